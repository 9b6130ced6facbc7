"""Classical (non-ML) reconstruction of m_tt, the baselines the regression is compared against."""
