"""Solution: mean relative error reduction (notebook 05)."""


def error_reduction(baseline_acc, method_acc) -> float:
    pairs = zip(baseline_acc, method_acc, strict=True)
    gains = [((1 - b) - (1 - m)) / (1 - b) for b, m in pairs if b < 1]
    return sum(gains) / len(gains)
