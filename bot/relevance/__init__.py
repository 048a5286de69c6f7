"""Relevance beyond keywords: text vectors of papers, `like:` similarity, recommendations.

Pure code: it knows papers and matrices, never Discord or the database.
"""
