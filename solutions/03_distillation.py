"""Solutions to the exercises of notebook 03 (distilling students)."""
import torch.nn.functional as F


def my_distillation_loss(student_logits, teacher_logits, labels, T, alpha):
    # Soft term: KL(teacher || student) at temperature T, summed over classes and
    # averaged over the batch ("batchmean"), times T^2 to keep its gradients'
    # size independent of T.
    kl = F.kl_div(F.log_softmax(student_logits / T, dim=-1),
                  F.log_softmax(teacher_logits / T, dim=-1),
                  reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels)  # at T = 1
    return alpha * T * T * kl + (1 - alpha) * hard


# At T = 1 a confident teacher's soft targets are nearly one-hot: little "dark knowledge" is left.
T1_PREDICTION = "sharper"
