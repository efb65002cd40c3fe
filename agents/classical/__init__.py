"""Classical (non-quantum, non-learned) agents."""
