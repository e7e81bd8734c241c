"""data_synthesis"""
