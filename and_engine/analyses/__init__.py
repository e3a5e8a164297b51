"""The paper's analyses (SPEC section 9) as pure functions of DataFrames / arrays (no database I/O).

lastlayer (Table 2/7), pruning + unlearning (Table 4, Figure 10; ``select_neurons`` / ``evaluate_pruning``
are also called live by the app), feature_importance (Figure 4), adjectives (Figure 5, top-20),
clusters (Algorithm 1, Figure 6, word clouds), acoustic_check (Appendix C); common: shared helpers.
"""
