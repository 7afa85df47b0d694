# %% [markdown]
# # 01 · Tasks: why a handful of labels is hard
#
# Every notebook in this course answers one question. This one asks:
#
# > What exactly is a *k-shot task*, and how well can a network do on one if it starts
# > from nothing?
#
# We set up the vocabulary the rest of the course uses (source and target domains,
# n-way k-shot tasks, support and query sets) and measure the **scratch baseline**: a
# network trained only on the k labelled examples of the task. Every later method is
# judged by how far it beats this baseline.

# %%
import torch

import dml_kit as dk
from dml_kit.compare import compare_on_tasks, method_rule, pixel_1nn
from dml_kit.settings import pick

DATASET = "glyphs"   # or "omniglot" / "mnist" with dk.data.load(DATASET, download=True)
data = dk.data.load(DATASET)
data

# %% [markdown]
# ## Two domains that share no class
#
# Transfer learning needs two labelled datasets over **disjoint** sets of classes:
#
# * the **source** domain $\mathcal{D}_S$ (Scott et al. call it T1): many classes, many
#   examples each. We may train on it as long as we like;
# * the **target** domain $\mathcal{D}_T$ (T2): *new* classes, and for each of them only
#   $k$ labelled examples.
#
# Formally $\mathcal{Y}_S \cap \mathcal{Y}_T = \varnothing$: no class of the target was
# ever seen during source training. `domain_split` cuts the classes of one dataset in
# two.

# %%
split = dk.data.domain_split(data, seed=0)
print("source:", split.source)
print("target:", split.target)
assert not set(split.source.class_names) & set(split.target.class_names)

# %% [markdown]
# ## The n-way k-shot task
#
# A task picks $n$ target classes and gives us, for each of them,
#
# * a **support set** $S = \{(x_i, y_i)\}_{i=1}^{nk}$ of $k$ labelled examples per class,
# * a **query set** $Q$ of further examples of the same classes, whose labels we must
#   predict.
#
# The score is the **query accuracy**
# $$\mathrm{acc} = \frac{1}{|Q|} \sum_{(x, y) \in Q} \mathbb{1}\left[\hat y(x) = y\right],$$
# and a classifier that guesses at random gets the **chance level** $1/n$ on average.
# Labels inside a task are always $0, \dots, n-1$: the class names only tell *us* which
# characters they are.

# %%
task = dk.data.kshot_task(split.target, n_way=5, k_shot=3, seed=0)
print(task, "| chance level:", 1 / task.n_way)
dk.viz.task_gallery(task, n_query=4, title="A 5-way 3-shot task: support | queries")

# %% [markdown]
# ## Exercise: split a labelled set into support and queries
#
# Write `support_query_split(labels, k_shot, seed)`: given a 1-D tensor of class labels,
# return two tensors of **indices**, `support` with exactly `k_shot` random examples of
# every class, and `query` with all the others. The same seed must give the same split
# (use a `torch.Generator`), different seeds different ones.
#
# *Hint:* loop over `torch.unique(labels)`, shuffle each class's indices with
# `torch.randperm(n, generator=g)`.

# %%
def support_query_split(labels: torch.Tensor, k_shot: int, seed: int):
    # your code here: return (support_indices, query_indices)
    raise NotImplementedError


dk.exercises.check("support_query_split", support_query_split)

# %% [markdown]
# ## How hard is it? Two baselines without any transfer
#
# **1-NN on pixels.** The simplest rule needs no training at all: a query takes the label
# of the support image whose pixels are closest (cosine similarity of the raw pixel
# vectors). It is the floor any learned representation must beat.
#
# **Scratch.** Train a fresh network (a Conv-4, the few-shot backbone) with cross-entropy
# on the $nk$ support images only, then classify the queries. This is the paper's
# *baseline* method: `dk.methods.run("scratch", task)`. The network has tens of thousands
# of weights and sees $nk$ examples: at $k = 1$, five images.
#
# `compare_on_tasks` draws one task per $(k, \text{seed})$ and scores both rules on the
# *same* task, so the two rows differ only by the rule.
#
# **Predict first.** Write down the query accuracy you expect for scratch on a 5-way
# task at $k = 1$ and at $k = 10$. Will it beat 1-NN on pixels?

# %%
K_VALUES = pick([1, 2, 5, 10], [1, 5])
SEEDS = range(pick(3, 1))
config = dk.experiments.PRESETS["classroom"].config.replace(
    target_epochs=pick(60, 5), target_patience=pick(10, 2))
baselines = compare_on_tasks(
    split.target, {"scratch": method_rule("scratch", config=config),
                   "1-NN on pixels": pixel_1nn},
    n_way=5, k_values=K_VALUES, seeds=SEEDS)
baselines.pivot_table(index="method", columns="k", values="accuracy").round(3)

# %%
dk.viz.accuracy_vs_k(baselines, chance=1 / 5,
                     title=f"{DATASET}, 5-way: accuracy without transfer")

# %% [markdown]
# ### What you see
#
# Look at where scratch lands relative to chance (dotted) and to 1-NN on
# raw pixels. A network trained on $nk$ images does not learn a representation better
# than the pixels themselves: it fits the support images perfectly and carries almost
# nothing over to the queries. This is **overfitting** in its purest form: tens of
# thousands of parameters, a handful of constraints. More shots help, but slowly.
#
# (The pixel rule does surprisingly well on `glyphs` because renderings of one character
# in different fonts still overlap in pixel space. On real handwriting, `omniglot`, it
# falls much lower: try it.)
#
# The fix the course explores: *do not start from nothing*. Learn a representation on the
# source classes, where labels are plentiful, and reuse it on the target. Notebook 02
# reuses the weights of a source classifier; notebook 03 learns a distance; notebook 04
# trains on episodes that look like the target tasks.
#
# ## Play: train the scratch network yourself
#
# The runner below trains the scratch method on a fresh 5-way task and shows the training
# live: the loss, the validation score (here the support accuracy: the paper's rule when
# no validation set exists), the embedding norms and a 2-D projection of the support
# embeddings.
#
# **Predict first:** the support accuracy quickly reaches 100 %. Does that tell you
# anything about the query accuracy? Now move `k` to 10 and press **Train** again.

# %%
runner = dk.widgets.MethodRunner(DATASET, method="scratch", n_way=5, k_shot=1,
                                 adapt_epochs=pick(40, 3), config=config)
runner

# %% [markdown]
# ## Check (the course runs these cells in CI)
#
# The cells below drive the runner as a reader would (set `k`, press **Train**) and check
# that what it shows follows, then check that this notebook's numbers make sense.

# %%
shown = dk.viz.figure_fingerprint     # a string that changes when a figure's data does
before = shown(runner.dashboard.projection_fig)
runner.k_shot.value = pick(5, 2)
runner.train_button.click()
assert runner.error is None, runner.error
assert len(runner.results) == 1 and runner.results[0]["k"] == runner.k_shot.value
assert 0.0 <= runner.result.accuracy <= 1.0
assert shown(runner.dashboard.projection_fig) != before      # the projection was drawn
assert "target accuracy" in runner.accuracy.value
print("runner:", runner.results[-1])

# %%
mean = baselines.groupby(["method", "k"])["accuracy"].mean()
assert baselines["accuracy"].between(0, 1).all()
assert set(baselines["k"]) == set(K_VALUES)
k_max = max(K_VALUES)
assert (baselines.query("method == '1-NN on pixels'")["accuracy"] > 1 / 5).all()  # > chance
assert mean["1-NN on pixels", k_max] >= mean["1-NN on pixels", 1] - 0.02   # shots help
assert mean["scratch", k_max] >= mean["scratch", 1] - 0.02
assert mean["scratch", 1] < 0.9                   # one shot from scratch is far from solved
assert mean["scratch", 1] <= mean["1-NN on pixels", k_max]    # no transfer, no miracle
print(mean.round(3).to_dict())
