"""NAO-V2: encoder-predictor-decoder controller and a size-balanced one-shot supernet.

``token_space`` (the space contract), ``controller`` (the Flax controller, its training and the
gradient-ascent generation), ``search`` (the search driver run by ``python -m jaxnas.train`` when
``config.method == 'nao_v2'``).
"""
