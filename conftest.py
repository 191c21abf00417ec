"""The shared fixtures (real servers, isolated names, tokens) come from the clinical_testing plugin,
which pytest loads through its entry point."""
