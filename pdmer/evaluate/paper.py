"""The DSAML paper's published numbers (AAAI 2025, Tables 1-2), shown beside ours when the dataset matches.

Each row: (arousal CCC, PCC, RMSE, valence CCC, PCC, RMSE), as printed in the paper (arousal first).
"""

# Table 1: traditional DMER (mean labels).
DMER = {
    "DEAM": {
        "DSAML (paper)": (0.390, 0.675, 0.202, 0.104, 0.221, 0.260),
        "DAMFF (paper)": (0.354, 0.621, 0.217, 0.055, 0.043, 0.299),
        "MCRNN (paper)": (0.227, 0.374, 0.265, 0.029, -0.005, 0.297),
        "DNN (paper)": (0.188, 0.362, 0.261, 0.033, 0.003, 0.281),
        "CRNN (paper)": (0.244, 0.517, 0.218, 0.017, -0.039, 0.270),
    },
    "PMEmo": {
        "DSAML (paper)": (0.186, 0.386, 0.112, 0.108, 0.260, 0.122),
        "DAMFF (paper)": (0.175, 0.378, 0.118, 0.091, 0.335, 0.134),
        "MCRNN (paper)": (0.104, 0.266, 0.168, 0.038, 0.154, 0.169),
        "DNN (paper)": (0.087, 0.217, 0.151, 0.030, 0.134, 0.159),
        "CRNN (paper)": (0.076, 0.231, 0.183, 0.034, 0.224, 0.169),
    },
}

# Table 2: personalized DMER on DEAM (support: the first 60 frames of a rater's test song). †: trained with MAML.
PDMER = {
    "DEAM": {
        "DSAML (paper)": (0.377, 0.541, 0.236, 0.092, 0.154, 0.245),
        "DAMFF† (paper)": (0.220, 0.414, 0.319, 0.035, 0.069, 0.344),
        "DAMFF (paper)": (0.232, 0.478, 0.342, 0.035, 0.008, 0.390),
        "MCRNN† (paper)": (0.173, 0.312, 0.332, 0.022, 0.021, 0.348),
        "MCRNN (paper)": (0.176, 0.301, 0.364, 0.015, -0.002, 0.391),
        "DNN† (paper)": (0.138, 0.273, 0.350, 0.010, -0.009, 0.367),
        "DNN (paper)": (0.153, 0.286, 0.361, 0.016, -0.004, 0.385),
        "CRNN† (paper)": (0.113, 0.290, 0.310, 0.008, -0.009, 0.337),
        "CRNN (paper)": (0.131, 0.365, 0.350, -0.001, -0.021, 0.366),
    },
}
