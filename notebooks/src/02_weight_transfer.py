# %% [markdown]
# # 02 · Weight transfer: reuse a classifier trained on the source
#
# **After this notebook you can** train a source classifier and watch it learn, write
# the cross-entropy from logits, fine-tune the classifier on a k-shot task (all weights
# or the head only) and judge it against scratch and the source features on the same
# tasks. **Time:** at the default settings, measured 16 s on a 2-core CPU (load
# average 0.8-1.7), from an empty data folder (93 s on a machine busy with other work).
#
# > Notebook 01 trained a network on the $k$ examples per class alone: on `glyphs` a
# > strong baseline, though far from perfect at small $k$. What if it starts from the
# > weights of a network that has already learned to tell hundreds of *other* classes
# > apart?
#
# This is **weight transfer** (fine-tuning), the everyday recipe of deep learning: train a
# classifier on the source domain, cut off its output layer, put a fresh $n$-way layer
# on top and train on the target's support set. We compare two flavours: fine-tune
# **all** weights, or train **only the new head**, and look at where each fails.

# %%
import numpy as np
import pandas as pd
from IPython.display import display

import dml_kit as dk
from dml_kit.compare import compare_on_tasks, embedding_1nn, method_rule
from dml_kit.settings import load_dataset, panel_data, pick

DATASET = "glyphs"   # or "omniglot" / "mnist": downloaded on first use (it says what, where)
split = dk.data.domain_split(load_dataset(DATASET), seed=0)
source = split.source.select_classes(range(min(split.source.n_classes, pick(200, 40))))  # CPU-sized
config = dk.experiments.PRESETS["classroom"].config.replace(
    source_epochs=pick(8, 1), batches_per_epoch=pick(40, 15),
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
#
# **Reading the curve.** The validation score is an accuracy over all the source classes
# (200 here), measured on held-out images of those *same* classes (scored on at most 100
# of them to save time): chance is one over the number of classes, printed by the cell.
# The training loss starts near $\ln(\text{classes})$, the cross-entropy of a uniform
# guess. Many-way classifiers often sit near that value for a while before the accuracy
# climbs: look for this plateau in the curve. A source phase that stops inside it (a few
# dozen steps) leaves the accuracy a few points above chance, and weight transfer then
# starts from a network that has learned almost nothing: compare the printed accuracy
# with chance before you read anything into the comparisons below. The panel below draws
# the loss, the validation score, the embedding norms and a projection of a few held-out
# source images **while** the classifier trains; the static curves follow.

# %%
history = dk.callbacks.HistoryCallback()
live = dk.viz.LiveDashboard(class_names=source.class_names, title="source classifier, live")
display(live)
clf = dk.methods.train_source("classifier", source, config, callbacks=[history, live])
print(f"source validation accuracy {clf.val_score:.3f} (chance {1 / source.n_classes:.3f}) "
      f"after {clf.train.epochs} epochs, final training loss {history.epochs[-1]['loss']:.2f} "
      f"(ln {source.n_classes} = {np.log(source.n_classes):.2f}), {clf.seconds:.0f} s")
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
# $f_{\theta_S}(x)$ is most cosine-similar. Scratch, from notebook 01, runs on the same
# tasks as a fourth row, so every comparison below is paired task by task.
#
# **Predict first.** Rank the three at $k = 1$ and at $k = 10$. Where will full
# fine-tuning, with its many free weights and $n$ training images, stand at $k = 1$?

# %%
rules = {"transfer: full": method_rule("weight_transfer", clf, config, head_only=False),
         "transfer: head only": method_rule("weight_transfer", clf, config, head_only=True),
         "1-NN on source features": embedding_1nn(clf.model.embedder, distance="cosine"),
         "scratch": method_rule("scratch", None, config)}
results = compare_on_tasks(split.target, rules, n_way=5, k_values=pick([1, 5, 10], [1, 5]),
                           seeds=range(pick(6, 2)))
results.pivot_table(index="method", columns="k", values="accuracy").round(3)

# %%
dk.viz.accuracy_vs_k(results, chance=1 / 5,
                     title=f"{DATASET}, 5-way: fine-tuning vs. source features")

# %% [markdown]
# ### Three claims, checked on your run
#
# Each claim is checked per $k$ on the same tasks (one per seed), as the mean paired
# difference with its 95% interval: **holds** if the whole interval is above zero,
# **fails** if it is below, **not resolved at this sample size** if it straddles zero.
#
# **Claim 1: transfer beats scratch.** Features learned on hundreds of source characters
# should help with new ones. Remember notebook 01: scratch is strong on `glyphs`,
# strongest at large $k$, so the room for transfer is largest at small $k$. Where the
# claim holds, the source helps; where it is not resolved, look at the interval: a wide
# one means fine-tuning on so few images varies a lot from task to task, a narrow one
# around zero means the support alone already teaches what the source would.

# %%
# verdict: full fine-tuning beats scratch, per k
table = dk.stats.paired_table(results, "transfer: full", "scratch")
print(table.drop(columns=["low", "high"]).round(3).to_string(index=False))

# %% [markdown]
# **Claim 2: full fine-tuning beats training the head only.** Letting every weight move
# adapts the features to the target; but the new head starts random and is fitted to
# $n$ images, and with all weights free the features the source taught can be pulled
# towards whatever separates those few images. The target phase cannot notice: with no
# validation set it scores the support itself, which the network fits at once. Where
# the claim holds, adapting the features paid off; where it fails, moving every weight
# hurt; where it is not resolved, the two are within the task-to-task noise, and the
# cheaper head-only variant loses nothing measurable.

# %%
# verdict: fine-tuning all weights beats training the head only, per k
table = dk.stats.paired_table(results, "transfer: full", "transfer: head only")
print(table.drop(columns=["low", "high"]).round(3).to_string(index=False))

# %% [markdown]
# **Claim 3: at small k, the source features alone do at least as well as fine-tuning.**
# The 1-NN on the source features needs no target training. If it beats full
# fine-tuning (or the two are not resolved apart) at $k = 1$, the *embedding* was the
# valuable part of the source classifier, not its classification layer. Scott et al.
# take this seriously: train the embedding *for* comparing examples (notebook 03); their
# first conclusion is that deep embeddings beat weight transfer as a starting point for
# transfer. If fine-tuning wins clearly at $k = 1$ too, this run does not support that
# reading.

# %%
# verdict: 1-NN on the source features beats full fine-tuning, per k
table = dk.stats.paired_table(results, "1-NN on source features", "transfer: full")
print(table.drop(columns=["low", "high"]).round(3).to_string(index=False))

# %% [markdown]
# ## Play: fine-tune with the runner
#
# The runner trains a (small, quick) source classifier, then fine-tunes it on a task,
# live. Its `config` is ours with `head_only` set, so this one trains the head only. Its
# source phase is far shorter than the one above (check its source accuracy on the
# curves): the runner is for watching fine-tuning happen, the tables above are the
# comparison to trust.
#
# **Predict first:** compare the "adapt" learning curve at $k = 1$ and $k = 10$: which
# phase reaches 100 % support accuracy faster, and does it say anything about queries?

# %%
runner = dk.widgets.MethodRunner(panel_data(DATASET, split), method="weight_transfer",
                                 n_way=5, k_shot=1, epochs=1, batches_per_epoch=pick(15, 4),
                                 adapt_epochs=pick(30, 3),
                                 config=config.replace(head_only=True))
runner

# %% [markdown]
# ## What to remember
#
# * Weight transfer keeps the source network's body and learns a new $n$-way head from
#   the $nk$ support images; full fine-tuning also moves the body.
# * Whether that beats scratch, and whether moving every weight beats training the head
#   only, is what your verdicts above answer per $k$, with their intervals.
# * The 1-NN on the source *features* needs no target training at all; where it keeps up,
#   the embedding was the valuable part of the source model, which notebook 03 trains
#   on purpose.
#
# **Paper.** Scott, Ridgeway & Mozer, *Adapted Deep Embeddings*, NeurIPS 2018 (weight
# transfer as one of its paradigms). Fine-tuning in general: Yosinski et al., *How
# transferable are features in deep neural networks?*, NeurIPS 2014.
#
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
