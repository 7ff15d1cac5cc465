"""by-framework's README examples with ``by_framework`` renamed to ``byway`` and nothing
else changed (each file says where a README fragment was wrapped in a function so it
runs); ``tests/compat/test_readme_examples.py`` runs them."""
