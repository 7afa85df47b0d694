# %% [markdown]
# # 01 · Tasks: why a handful of labels is hard
#
# **After this notebook you can** set up source and target domains and k-shot tasks,
# split a labelled set into support and queries yourself, train the *scratch* baseline
# and read a paired verdict with its 95% interval. **Time:** at the default settings,
# measured 11 s on a 2-core CPU (load average 1.5), from an empty data folder (117 s on
# a machine busy with other work, load average 3-5).
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
from dml_kit.compare import compare_on_tasks, exceeds, method_rule, pixel_1nn
from dml_kit.settings import load_dataset, panel_data, pick

DATASET = "glyphs"   # or "omniglot" / "mnist": downloaded on first use (it says what, where)
data = load_dataset(DATASET)
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
# *same* task, so the two rows differ only by the rule. While it runs, a bar and a table
# of the mean accuracy so far per rule and $k$ grow under the cell (press the stop button
# to end it early: it then returns nothing, rather than a half-finished table).
#
# **Predict first.** Write down the query accuracy you expect for scratch on a 5-way
# task at $k = 1$ and at $k = 10$. Will it beat 1-NN on pixels?

# %%
K_VALUES = pick([1, 2, 5, 10], [1, 5])
SEEDS = range(pick(6, 2))     # one task per (k, seed): the replications of every verdict
config = dk.experiments.PRESETS["classroom"].config.replace(
    target_epochs=pick(60, 5), target_patience=pick(10, 2))
scratch = method_rule("scratch", config=config)
baselines = compare_on_tasks(
    split.target, {"scratch": scratch, "1-NN on pixels": pixel_1nn,
                   "scratch, BN not recomputed": dk.compare.without_bn_recalibration(scratch)},
    n_way=5, k_values=K_VALUES, seeds=SEEDS)
baselines.pivot_table(index="method", columns="k", values="accuracy").round(3)

# %%
dk.viz.accuracy_vs_k(baselines, chance=1 / 5, spread="std",   # band: task-to-task spread
                     title=f"{DATASET}, 5-way: accuracy without transfer")

# %% [markdown]
# ### What you see: three claims, checked on your run
#
# The table gives means over the tasks; the figure's bands show how much single tasks
# differ (± one standard deviation; later notebooks draw the 95% interval of the mean,
# the default of `dk.viz.accuracy_vs_k`). Every claim below
# is checked on the *same* tasks (one per seed and $k$), with a 95% interval over
# them, and gets one of three verdicts: **holds** (the whole interval is on the claimed
# side), **fails** (the whole interval is on the other side) or **not resolved at this
# sample size** (the interval straddles the line: more tasks would be needed to tell).
#
# **Claim 1: scratch learns something.** Its mean accuracy is above chance, $1/5$, at
# every $k$. If it failed, training on $nk$ images would teach the network nothing usable
# on the queries.

# %%
# verdict: scratch is above chance (1/5) at every k
print(exceeds(baselines, "scratch", 1 / 5).to_string(index=False))

# %% [markdown]
# **Claim 2: scratch beats the rule with no learning at all.** Per task, the difference
# *scratch minus 1-NN on pixels*, averaged with its interval. Where it holds, training a
# network on the support found something the raw pixels do not show; where it fails,
# the trained network does worse than comparing pixels; "not resolved" means the two are
# within the task-to-task noise of each other at this number of tasks.

# %%
# verdict: scratch beats 1-NN on pixels, per k
table = dk.stats.paired_table(baselines, "scratch", "1-NN on pixels")
print(table.drop(columns=["low", "high"]).round(3).to_string(index=False))

# %% [markdown]
# ### Why is scratch this strong here?
#
# You may have predicted near-chance accuracy for a network of tens of thousands of
# weights fitted to five images. Two things about *these* data and *this* recipe make
# the baseline strong, and the run measures both:
#
# * **The classes are easy in pixel space.** A `glyphs` class is one Unicode character
#   drawn in different fonts, centred on the same 28x28 grid: its images overlap pixel
#   for pixel. Look at 1-NN on pixels at $k = 1$ in the table: that is how far pure
#   template matching goes. A classifier trained on the support can learn such templates
#   (one per class, in its last layer), and at large $k$ that is most of the job.
# * **Batch norm is computed from the support.** The Conv-4 has batch-norm layers. In
#   eval mode they normalise with running statistics that training moves by only 10% per
#   step; a target phase over $nk$ images is one step per epoch, so those statistics stay
#   near their start (mean 0, variance 1) and the queries are normalised wrongly. The kit
#   recomputes them on the support before every score (the method's docstring explains
#   it). The row *scratch, BN not recomputed* is the same training with that step
#   switched off.
#
# **Claim 3: recomputing batch norm on the support is what makes scratch work.** If it
# holds at a given $k$, a scratch baseline that skips this step (as many code bases do)
# reports an accuracy near chance there, and any transfer method compared with it looks
# far better than it is.

# %%
# verdict: recomputing batch norm on the support raises scratch's accuracy, per k
table = dk.stats.paired_table(baselines, "scratch", "scratch, BN not recomputed")
print(table.drop(columns=["low", "high"]).round(3).to_string(index=False))

# %% [markdown]
# **What this means for the comparisons to come.** A transfer method must beat *this*
# scratch and the pixel rule on the same tasks, and on `glyphs` both set a high bar,
# highest at large $k$, where $nk$ support images already pin down the templates. The
# room left for transfer is largest at small $k$; whether a method uses it is what the
# next notebooks check, task by task. On
# handwriting (`omniglot`), where one class's images do not overlap pixel for pixel, the
# baselines should be weaker (try it). Notice also the spread in the figure: single tasks
# differ by tens of points, which is why every claim in this course is checked over
# several tasks, paired.
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
# **Predict first:** how many epochs until the support accuracy reaches 100 %? Once it
# does, does it tell you anything about the query accuracy? Now move `k` to 10 and press
# **Train** again, and compare.

# %%
runner = dk.widgets.MethodRunner(panel_data(DATASET, split), method="scratch", n_way=5,
                                 k_shot=1, adapt_epochs=pick(40, 3), config=config)
runner

# %% [markdown]
# ## What to remember
#
# * A k-shot task is scored on its queries; chance is $1/n$, and single tasks differ by
#   tens of points, so every claim is checked over several tasks, paired.
# * The scratch baseline (a network trained on the $nk$ support images alone) is the bar
#   every transfer method must clear; your verdicts above say how high it is here.
# * Recomputing batch-norm statistics on the support is part of a fair scratch baseline
#   (claim 3 measured what skipping it costs).
#
# **Paper.** Scott, Ridgeway & Mozer, *Adapted Deep Embeddings: A Synthesis of Methods
# for k-Shot Inductive Transfer Learning*, NeurIPS 2018 (source/target domains T1/T2,
# the baseline). Batch norm: Ioffe & Szegedy, ICML 2015.
#
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
