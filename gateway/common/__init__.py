"""Small helpers every folder of the gateway uses: secrets scrubbing, watched files, UTC timestamps.

They import nothing else of the gateway's, so any folder may import them without a loop.
"""
