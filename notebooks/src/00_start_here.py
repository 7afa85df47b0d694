# %% [markdown]
# # 00 · Start here: learning from a handful of examples
#
# **After this notebook you can** load the kit's datasets (or a real one, by changing one
# variable), draw an *n-way k-shot task* and name its parts (support, queries, chance
# level), and classify a query by its nearest support image, a rule you write yourself.
# **Time:** at the default settings, measured 19 s on a 2-core CPU (load average 1.4),
# from an empty data folder: that includes the first rendering of `glyphs` and the
# sketchpad's small network; later runs are faster. (On a machine busy with other work,
# load average 3-5, the same run took 94 s.)
#
# **dml_kit** is a teaching kit for *deep metric learning* and *k-shot transfer*. The
# question running through every notebook:
#
# > You have a network trained on many labelled examples of some classes (the **source**).
# > Now new classes arrive (the **target**) with only **k labelled examples each**.
# > What is the best way to reuse what the network learned?
#
# Three papers answer parts of it, and the course follows them:
#
# | paper | what it teaches | notebooks |
# |---|---|---|
# | *Adapted Deep Embeddings* (Scott, Ridgeway & Mozer, NeurIPS 2018) | weight transfer vs. deep metric learning vs. few-shot learning, and the **adapted** hybrids, which the paper finds beat all three (05 checks it on your run) | 01–05 |
# | *Spherical Embedding Constraint* (Zhang, Li & Zhang, NeurIPS 2020) | why embedding **norms** matter under angular losses, and the SEC regulariser | 06 |
# | *ooDML* (Milbich, Roth et al., NeurIPS 2021) | how embeddings generalise as test classes **drift** from training classes | 07 |
#
# ## How to use these notebooks
# * Run the cells **top to bottom** (Shift-Enter). Every notebook finishes in a few
#   minutes on a laptop CPU; nothing needs the internet unless you switch `DATASET` to a
#   real dataset, which is then downloaded once (each notebook's first cells).
# * Each notebook has a **widget** to play with. Before you move a slider, write down
#   what you *predict* will happen: the surprise is where the learning is.
# * Each has an **exercise** (this one too): you write a function, and
#   `dml_kit.exercises.check(...)` compares it with the library (values, and gradients for
#   losses) and says what is wrong when it differs.
# * The library in `dml_kit/` is the reference implementation: every loss and method
#   carries its formula and its paper in the docstring (try `dk.losses.HistogramLoss?`).

# %%
import pandas as pd
from IPython.display import display

import dml_kit as dk
from dml_kit.compare import compare_on_tasks, pixel_1nn
from dml_kit.settings import EMBEDDED, fast_mode, load_dataset, pick

DATASET = "glyphs"   # or "omniglot" / "mnist": downloaded on first use (it says what, where)
print(f"dml_kit {dk.__version__}; training device: {dk.default_device()}; "
      f"fast setting: {fast_mode()}; dataset: {DATASET}")

# %% [markdown]
# ## The data: two datasets that ship with the kit
#
# * **`digits`**: scikit-learn's 1,797 handwritten digits, 8×8 pixels, 10 classes. Tiny
#   and quick: good for checking an idea in seconds.
# * **`glyphs`**: an Omniglot-like set the kit renders on your machine from the fonts
#   matplotlib ships. Each **class is a character**, each **group an alphabet** (Latin,
#   Greek, Cyrillic, Armenian, Georgian, Hebrew, Arabic, math symbols, ...). The
#   instances of a class are renderings in different fonts and styles, randomly
#   rotated, sheared, thickened and warped, like different people drawing the same
#   letter. The first load renders it into `data/` (about a minute); later loads take
#   well under a second.
#
# `DATASET` picks the one the rest of this notebook uses: `"glyphs"` by default, or a real
# set such as `"omniglot"` (1,623 handwritten characters, 16 MB) or `"mnist"`, which
# `load_dataset` downloads into `data/` the first time.

# %%
digits = dk.data.load("digits")
data = load_dataset(DATASET)
print(digits)
print(data)

# %% [markdown]
# Many classes, few examples each: that is what makes `glyphs` (and Omniglot) a few-shot
# dataset. Here are the groups (alphabets) and how many classes each contributes.

# %%
alphabets = pd.Series(data.class_groups).value_counts().rename_axis("group")
alphabets.to_frame("classes").T

# %% [markdown]
# ## Source and target: two disjoint sets of classes
#
# Transfer needs two domains that share **no class**. `domain_split` cuts the classes
# in two; with `by="group"` whole alphabets go to one side, so the target holds scripts
# the source network has never seen (a harder, more realistic transfer).

# %%
by = "group" if len(alphabets) > 1 else "class"    # MNIST has one group: split classes
split = dk.data.domain_split(data, by=by, seed=0)
print("source:", split.source)
print("target:", split.target)
assert not set(split.source.class_names) & set(split.target.class_names)

# %% [markdown]
# ## An n-way k-shot task
#
# From the target we draw a **task**: `n_way` classes, `k_shot` labelled examples each
# (the **support** set), a few more as a validation part, and held-out **queries** to
# measure accuracy. With `k_shot=1` you get one example per class: *one-shot learning*.
# A rule that guesses at random is right with probability $1/n$, the **chance level**.

# %%
task = dk.data.kshot_task(split.target, n_way=5, k_shot=1, seed=0)
task

# %% [markdown]
# ## Explore tasks yourself
#
# The explorer draws a task and shows it: one row per class, the **k support images**
# on the left, a few **queries** on the right.
#
# **Look first:** 5-way 1-shot, could *you* label the queries from the single support
# image per row? Which alphabets make it hardest? Then move `k`: at what k does the task
# start to look easy to you?

# %%
explorer = dk.widgets.TaskExplorer(DATASET if DATASET in EMBEDDED else data,
                                   n_way=5, k_shot=1, seed=0)
explorer

# %% [markdown]
# ## The simplest rule: the nearest support image
#
# Before any learning: give each query the label of the support image it resembles most.
# Flatten every image to a pixel vector and compare by the **cosine similarity**, which
# ignores overall brightness:
# $$\hat y(x) = y_{i^*}, \qquad i^* = \arg\max_{i \in S} \cos(x, x_i), \qquad
#   \cos(x, x_i) = \frac{x^\top x_i}{\lVert x\rVert\,\lVert x_i\rVert}.$$
#
# ### Exercise: write the rule
#
# `nearest_neighbour(support_x, support_y, query_x)` returns one label per query (a
# tensor). *Hint:* `F.normalize(x.flatten(1), dim=1)` gives unit rows; a matrix product
# gives all cosines at once.

# %%
def nearest_neighbour(support_x, support_y, query_x):
    # your code here: return the label of each query's most cosine-similar support image
    raise NotImplementedError


dk.exercises.check("nearest_neighbour", nearest_neighbour)

# %% [markdown]
# **Predict first**, and write it down: on 5-way tasks of `DATASET`'s target classes,
# what share of the queries does this rule get right with **one** support image per
# class, and with **five**? Is one image per class enough to beat chance (20%)? The next
# cells measure it on several tasks (the library's version of the rule,
# `dk.compare.pixel_1nn`); while they run, a bar and a table of the mean accuracy so far
# per k show how far they got.

# %%
SEEDS = range(pick(10, 3))          # one task per (k, seed)
pixels = compare_on_tasks(split.target, {"1-NN on pixels": pixel_1nn}, n_way=5,
                          k_values=[1, 5], seeds=SEEDS)
pixels.groupby("k")["accuracy"].agg(["mean", "min", "max"]).round(3)

# %%
# verdict: 1-NN on pixels beats chance at one shot, and five shots beat one
ci = dk.stats.mean_ci(pixels.query("k == 1")["accuracy"].to_numpy())
print(f"1-shot accuracy above chance (0.2), {ci.n} tasks: {dk.stats.verdict(ci, 0.2).text()}")
at_5, at_1 = dk.stats.paired_values(pixels, 5, 1, column="k")
print(f"5 shots minus 1 shot (n = {len(at_1)} tasks): {dk.stats.compare(at_5, at_1).text()}")

# %% [markdown]
# ## A teaser: draw your own character
#
# Where the course is heading: a network that has never seen these five characters
# compares your drawing with one labelled example set of each (notebook 04 explains how).
# Draw one of the characters shown under the canvas with the mouse; after each stroke the
# panel shows the nearest examples, the class probabilities and where your drawing lands.
# The first run trains a small network and keeps it on disk: the live panel above the
# sketchpad shows that training as it happens (the loss, the validation score, the
# embedding norms and a projection of a few source characters). Later runs load the
# network from disk, and the live panel says so instead.
#
# **Predict first:** will your drawing's class come out on top? What if you draw it
# sloppily?

# %%
live = dk.viz.LiveDashboard(title="the sketchpad's network, live (first run only)")
display(live)
sketchpad = dk.widgets.Sketchpad(callbacks=[live])   # a small protonet on glyphs, 5-way 5-shot
print(f"the sketchpad's network: {sketchpad.origin}")
sketchpad

# %% [markdown]
# ## What to remember
#
# * A k-shot task has $n$ new classes with $k$ labelled **support** images each, and
#   **queries** to score; chance is $1/n$.
# * Source and target share **no class**: whatever the network learned on the source must
#   carry over to classes it has never seen.
# * The nearest support image in pixel space is the floor: your verdict above says
#   whether it beats chance on this dataset and by how much, and every learned method in
#   this course must beat it.
#
# **Papers.** Scott, Ridgeway & Mozer, *Adapted Deep Embeddings: A Synthesis of Methods
# for k-Shot Inductive Transfer Learning*, NeurIPS 2018. Vinyals et al., *Matching Networks
# for One Shot Learning*, NeurIPS 2016 (the n-way k-shot protocol). Lake, Salakhutdinov &
# Tenenbaum, *Human-level concept learning through probabilistic program induction*,
# Science 2015 (Omniglot).
#
# ## What comes next
#
# | notebook | question |
# |---|---|
# | 01 Tasks | why are few labels hard? the *scratch* baseline |
# | 02 Weight transfer | fine-tune a source classifier on the target |
# | 03 Deep metric learning | learn distances instead of classes (histogram loss & friends) |
# | 04 Few-shot learning | prototypical networks and episodes |
# | 05 Adapted embeddings | the hybrids, and the full comparison |
# | 06 Embedding norms and SEC | do angular losses care about norms? what does a norm constraint change? |
# | 07 Distribution shift | when the target drifts away from the source |
# | 08 Capstone | design your own study |
#
# ### Check (the course runs these cells in CI)
# The cell below drives the explorer from Python, exactly as a reader would with the
# mouse, and checks that the gallery follows.

# %%
shown = dk.viz.figure_fingerprint     # a string that changes when a figure's data does

before = shown(explorer.figure)
explorer.n_way.value, explorer.k_shot.value = 3, 2
assert len(explorer.task.support_y) == 3 * 2          # n x k support images
assert shown(explorer.figure) != before                # and the figure was redrawn
explorer.dataset.value = "digits"
assert explorer.k_shot.max < digits.min_class_size     # k can't exceed a class (minus queries)
print("the explorer follows its controls; k slider capped at", explorer.k_shot.max)
explorer.dataset.value = data.name                     # leave it on DATASET for the reader
assert pixels["accuracy"].between(0, 1).all() and len(pixels) == 2 * len(SEEDS)
