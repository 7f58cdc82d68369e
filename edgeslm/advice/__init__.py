"""Alert → maintenance advice: evidence prompt (pure), local model (llm.py), rules fallback, worker."""
