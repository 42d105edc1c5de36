"""Measurements of networks: complexity (Table 1), and later layer responses and gradient flow."""
