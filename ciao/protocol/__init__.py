"""The Jupyter wire: connection file, signed messages, the five sockets and their loops.

It knows message shapes, not what they mean (that is ciao.kernel).
"""
