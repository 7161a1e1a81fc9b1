"""How sure a figure is: intervals for accuracies and F1 scores, paired comparisons of two models, summaries
over seeds and the accuracy and class areas of a map. Plain numbers in, plain numbers out (NumPy and
scipy.stats), so every layer may use them."""
