"""The evaluation suite: privacy (EER), utility (WER), quality and speed of any wav-to-wav system."""
