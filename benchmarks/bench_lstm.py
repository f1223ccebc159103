"""Issue 15's LSTM benchmark: bench_rnn.py with ``--kind lstm`` (T = 20 steps of 4 features, an
LSTM of 32 units, a softmax head of 3, cross-entropy, Adam, float32, batch 16), the generated C and
NumPy steps against PyTorch eager's nn.LSTM.

Run: python benchmarks/bench_lstm.py [--repeat 7] [--min-time 0.2] [--callgrind]
"""

from bench_rnn import main

if __name__ == "__main__":
    main("lstm")
