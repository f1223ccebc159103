"""The derivation core: IR, graph, layer and op kinds, the chain rule, the Derivation."""
