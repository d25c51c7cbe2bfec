"""SPyNet pretraining on synthetic motion (`pretrain`), started from a wired normal-flow estimator (`init_weights`)."""
