# %% [markdown]
# # 02 · Weight transfer: reuse a classifier trained on the source
#
# > Notebook 01 showed that a network trained on $k$ examples per class barely beats
# > chance. What if it starts from the weights of a network that has already learned to
# > tell hundreds of *other* classes apart?
#
# This is **weight transfer** (fine-tuning), the everyday recipe of deep learning: train a
# classifier on the source domain, cut off its output layer, put a fresh $n$-way layer
# on top and train on the target's support set. We compare two flavours: fine-tune
# **all** weights, or train **only the new head**, and look at where each fails.

# %%
import pandas as pd

import dml_kit as dk
from dml_kit.compare import compare_on_tasks, embedding_1nn, method_rule
from dml_kit.settings import pick

DATASET = "glyphs"   # or "omniglot" / "mnist" with dk.data.load(DATASET, download=True)
split = dk.data.domain_split(dk.data.load(DATASET), seed=0)
source = split.source.select_classes(range(pick(200, 40)))   # a subset: CPU-sized
config = dk.experiments.PRESETS["classroom"].config.replace(
    source_epochs=pick(3, 1), batches_per_epoch=pick(20, 15),
    target_epochs=pick(25, 5), target_patience=pick(5, 2))
print("source:", source, "\ntarget:", split.target)

# %% [markdown]
# ## Step 1: a classifier on the source
#
# The network is an embedder $f_\theta$ (a Conv-4 producing a 64-d vector) followed by a
# linear head $W, b$ with one row per source class. Its logits are
# $z = W f_\theta(x) + b$, turned into probabilities by the softmax, and it is trained
# with the **cross-entropy**, the mean negative log-probability of the true class:
# $$\mathcal{L}_{CE} = -\frac{1}{B}\sum_{i=1}^{B} \log \frac{e^{z_{i, y_i}}}{\sum_{c} e^{z_{i,c}}}
#  = \frac{1}{B}\sum_{i=1}^{B} \Big(\log\sum_c e^{z_{i,c}} - z_{i,y_i}\Big).$$
# Training stops early when the accuracy on a validation part held out of every source
# class stops improving; the best weights are restored (the paper's T1 protocol).

# %%
history = dk.callbacks.HistoryCallback()
clf = dk.methods.train_source("classifier", source, config, callbacks=[history])
print(f"source validation accuracy {clf.val_score:.3f} after {clf.train.epochs} epochs "
      f"({clf.seconds:.0f} s)")
dk.viz.learning_curves(history.epochs, history.steps, title="Source classifier")

# %% [markdown]
# ## Exercise: the cross-entropy from logits
#
# Write `cross_entropy(logits, labels)` for a batch: `logits` is `(B, C)`, `labels` is
# `(B,)` of class ids; return the mean over the batch as a 0-d tensor. Use
# `torch.logsumexp` (numerically stable) rather than `exp` then `log`. The checker
# compares values and gradients with `torch.nn.functional.cross_entropy`.

# %%
def cross_entropy(logits, labels):
    # your code here
    raise NotImplementedError


dk.exercises.check("cross_entropy", cross_entropy)

# %% [markdown]
# ## Step 2: fine-tune on the target
#
# For a target task we keep $f_\theta$, throw away the source head and put a new,
# randomly initialised head $W' \in \mathbb{R}^{n \times 64}$ on top. Then we minimise
# $\mathcal{L}_{CE}$ on the $nk$ support examples, either
#
# * **full**: $\theta$ and $W'$ both train, starting from $\theta_S$; or
# * **head only**: $\theta = \theta_S$ stays frozen, only $W'$ learns (a linear classifier
#   on fixed features; `head_only=True`).
#
# Both reuse the *same* source model: `dk.methods.run(..., source=clf)` never modifies
# it. As a reference we add the **1-NN on the source features**: no training on the
# target at all, a query takes the label of the support example whose source embedding
# $f_{\theta_S}(x)$ is most cosine-similar. (Scratch, from notebook 01, stayed between
# about 0.2 and 0.35 on these tasks.)
#
# **Predict first.** Rank the three at $k = 1$ and at $k = 10$. Where will full
# fine-tuning, with its many free weights and $n$ training images, stand at $k = 1$?

# %%
rules = {"transfer: full": method_rule("weight_transfer", clf, config, head_only=False),
         "transfer: head only": method_rule("weight_transfer", clf, config, head_only=True),
         "1-NN on source features": embedding_1nn(clf.model.embedder, distance="cosine")}
results = compare_on_tasks(split.target, rules, n_way=5, k_values=pick([1, 5, 10], [1, 5]),
                           seeds=range(pick(2, 1)))
results.pivot_table(index="method", columns="k", values="accuracy").round(3)

# %%
dk.viz.accuracy_vs_k(results, chance=1 / 5,
                     title=f"{DATASET}, 5-way: fine-tuning vs. source features")

# %% [markdown]
# ### Where weight transfer fails
#
# * **Transfer beats scratch** (notebook 01) by a wide margin: features learned on
#   hundreds of source characters are useful for new ones.
# * **At small k, fine-tuning is fragile.** The new head starts random and is fitted to
#   $n$ images; when all weights move, the features the source taught can be pulled
#   towards whatever separates those few images. The target phase can't even notice: with
#   no validation set, it scores the support itself, which the network fits at once.
# * **The 1-NN on the source features** needs no target training and is often as good or
#   better at $k = 1$: the *embedding* was the valuable part, not the classifier. Scott et
#   al. take this seriously: train the embedding *for* comparing examples (notebook 03),
#   and their first conclusion is that deep embeddings beat weight transfer as a starting
#   point for transfer.
#
# ## Play: fine-tune with the runner
#
# The runner trains a (small, quick) source classifier, then fine-tunes it on a task,
# live. Its `config` is ours with `head_only` set, so this one trains the head only.
#
# **Predict first:** compare the "adapt" learning curve at $k = 1$ and $k = 10$: which
# phase reaches 100 % support accuracy faster, and does it say anything about queries?

# %%
runner = dk.widgets.MethodRunner(DATASET, method="weight_transfer", n_way=5, k_shot=1,
                                 epochs=1, batches_per_epoch=pick(15, 4),
                                 adapt_epochs=pick(30, 3),
                                 config=config.replace(head_only=True))
runner

# %% [markdown]
# ## Check (the course runs these cells in CI)
#
# Drive the runner (set `k`, press **Train**), check the panel follows, then check that
# the numbers of this notebook make sense.

# %%
shown = dk.viz.figure_fingerprint     # a string that changes when a figure's data does
before = shown(runner.dashboard.curves)
runner.k_shot.value = 3
runner.train_button.click()
assert runner.error is None, runner.error
assert runner.results[-1]["k"] == 3 and runner.result.method == "weight_transfer"
assert shown(runner.dashboard.curves) != before          # the learning curves were drawn
assert "target accuracy" in runner.accuracy.value
print("runner:", runner.results[-1])

# %%
mean = results.groupby(["method", "k"])["accuracy"].mean().unstack()
assert results["accuracy"].between(0, 1).all()
steps = pd.DataFrame(history.steps)
assert (steps["phase"] == "source").all()
assert steps["loss"].tail(5).mean() < steps["loss"].head(5).mean()  # the source phase learned
best_transfer = mean.loc[["transfer: full", "transfer: head only"]].max()
assert (best_transfer > 1 / 5).all()                          # transfer beats chance
assert best_transfer.iloc[-1] >= best_transfer.iloc[0] - 0.02  # and more shots help
assert (mean.loc["1-NN on source features"] > 1 / 5).all()  # source features beat chance
mean.round(3)
