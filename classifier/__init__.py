"""The digit classifier: MNIST loading, training, compression to an integer model, the integer reference
model, image preprocessing and the model artifact.

Knows numpy and Keras; never imports Django or `contracts`.
"""
