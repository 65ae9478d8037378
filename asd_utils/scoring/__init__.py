"""Scoring back ends: embeddings of training clips in, one anomaly score per test clip out.

Scikit-learn style scorers (``fit(embeddings, domains)``, ``score(embeddings)``, higher = more
anomalous): kNN, k-means, GMM, Mahalanobis, training-statistic normalisation and ensembles. Numpy,
scikit-learn and torch only; imports nothing above ``storage``.
"""
