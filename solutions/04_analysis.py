"""Solutions to the exercises of notebook 04 (analysis).

Checked: exercise 4 (my_fidelity_gap) and 5 (PAIRED_VERDICT). Notes on the open exercises 1-3 below."""


def my_fidelity_gap(student_logits, teacher_logits, labels):
    # The teacher's mistakes the student copied: same class as the teacher, and that class is wrong.
    student, teacher = student_logits.argmax(dim=1), teacher_logits.argmax(dim=1)
    return ((student == teacher) & (teacher != labels)).float().mean().item()


# +0.4 points with a paired SE of 0.25: 2 SE = 0.5 > 0.4, so the interval [-0.1, +0.9] includes 0.
PAIRED_VERDICT = "within noise"

# Exercise 1 (open). KD_SEED=1 (or seed=1 in both notebooks' parameters). The few-label students use the notebooks'
# fixed SEEDS (0, 1, 2 today), so only the all-label students are re-drawn. The recorded per-seed few-label numbers
# (notebook 03, section 5; recorded run, Fashion-MNIST, cpu profile, 2026-12-02) show the scale of seed noise:
# alpha = 0 at 79.61 / 79.21 / 79.08%, and alpha = 0.5 gains of 3.63 / 4.19 / 3.76 points, whose spread (SD 0.29,
# SE 0.17) is what those verdicts ("better" by 11-23 SE; alpha = 1: 3.09 / 4.31 / 3.81) are tested against. The
# all-label verdicts rest on one seed, and their paired SE counts only test-set noise (0.20-0.22 points), not how far
# another seed moves a student, which no all-label run here measures (for scale: notebook 05's three alpha = 0
# students, on 4,000 images, scored 84.82 / 85.10 / 85.24% on the test set). Both all-label differences were
# "within noise" (alpha = 0.5: -0.12 ± 0.20; alpha = 1: -0.37 ± 0.22, 1.7 SE); with another seed either may change
# sign, and alpha = 1 may cross 2 SE. Depends on the run.
#
# Exercise 2 (open). Re-run 03 and 04 with temperature=1.0, then 10.0, and read the alpha = 1 row of section 7.
# Expect agreement to be highest and the KL to the teacher lowest at T = 1: the KL is measured at T = 1, which is
# what an alpha = 1, T = 1 student is trained to minimise (on the training images). At T = 10 the student is pulled
# towards all of the teacher's logits, the very negative ones included, and its fidelity at T = 1 should fall.
# Notebook 05's recorded sweep (4,000 images, alpha = 1 minus alpha = 0, paired over 3 seeds, on validation images)
# shows the direction: agreement +1.32 ± 0.34 / -0.08 ± 0.42 / -2.72 ± 0.25 points and KL -0.035 / +0.013 / +0.085
# nats (SE 0.003-0.004) at T = 1 / 4 / 20. This notebook's all-label alpha = 1 values at T = 4 (agreement 94.06%, KL
# 0.072 nats in the recorded run of 2026-12-02) should move the same way; by how much depends on the run.
#
# Exercise 3 (open). In the recorded run (2026-12-02) the few-label hard-label student's most-confused pair (section
# 4's matrices and section 6's list, mean of 3 seeds) is Coat taken for Pullover: 176 of the 1,000 coats a seed
# (17.6%), only just ahead of Shirt taken for T-shirt/top and Pullover taken for Shirt (about 17% each in the
# matrices). The alpha = 1 student confuses it much less: 80.3 fewer coats a seed (-62 / -97 / -82, so beyond the
# seed noise), and the teacher makes the same confusion on only 40 of its 1,000 coats (its own most-confused pair is
# Shirt taken for T-shirt/top, about 10%). So on this pair the distilled student moved towards the teacher; on Shirt
# taken for Coat it moved away (+48.0 a seed, where the teacher, 63, is below the hard-label student, 100): a student
# does not copy its teacher's confusion matrix. Use my_fidelity_gap-style masks to check how many of those coats the
# student and the teacher both call pullovers. Depends on the run.
