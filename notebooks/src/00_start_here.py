# %% [markdown]
# # 00 · Start here: learning from a handful of examples
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
#   minutes on a laptop CPU; nothing needs the internet.
# * Each notebook has a **widget** to play with. Before you move a slider, write down
#   what you *predict* will happen: the surprise is where the learning is.
# * From notebook 01 on, each has an **exercise**: you write a function, and
#   `dml_kit.exercises.check(...)` compares it with the library on values *and gradients*.
# * The library in `dml_kit/` is the reference implementation: every loss and method
#   carries its formula and its paper in the docstring (try `dk.losses.HistogramLoss?`).

# %%
import pandas as pd

import dml_kit as dk
from dml_kit.settings import fast_mode

print(f"dml_kit {dk.__version__}; training device: {dk.default_device()}; "
      f"fast setting: {fast_mode()}")

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

# %%
digits = dk.data.load("digits")
glyphs = dk.data.load("glyphs")
print(digits)
print(glyphs)

# %% [markdown]
# Many classes, few examples each: that is what makes `glyphs` a few-shot dataset.
# Here are the alphabets and how many characters each contributes.

# %%
alphabets = pd.Series(glyphs.class_groups).value_counts().rename_axis("alphabet")
alphabets.to_frame("characters").T

# %% [markdown]
# ## Source and target: two disjoint sets of classes
#
# Transfer needs two domains that share **no class**. `domain_split` cuts the classes
# in two; with `by="group"` whole alphabets go to one side, so the target holds scripts
# the source network has never seen (a harder, more realistic transfer).

# %%
split = dk.data.domain_split(glyphs, by="group", seed=0)
print("source:", split.source)
print("target:", split.target)
assert not set(split.source.class_names) & set(split.target.class_names)

# %% [markdown]
# ## An n-way k-shot task
#
# From the target we draw a **task**: `n_way` classes, `k_shot` labelled examples each
# (the **support** set), a few more as a validation part, and held-out **queries** to
# measure accuracy. With `k_shot=1` you get one example per class: *one-shot learning*.

# %%
task = dk.data.kshot_task(split.target, n_way=5, k_shot=1, seed=0)
task

# %% [markdown]
# ## Explore tasks yourself
#
# The explorer draws a task and shows it: one row per class, the **k support images**
# on the left, a few **queries** on the right.
#
# **Predict first:** with `glyphs`, 5-way 1-shot, could *you* label the queries from
# the single support image per row? Which alphabets make it hardest? Then move
# `k`: at what k does the task start to look easy to you?

# %%
explorer = dk.widgets.TaskExplorer("glyphs", n_way=5, k_shot=1, seed=0)
explorer

# %% [markdown]
# ## A teaser: draw your own character
#
# Where the course is heading: a network that has never seen these five characters
# compares your drawing with one labelled example set of each (notebook 04 explains how).
# Draw one of the characters shown under the canvas with the mouse; after each stroke the
# panel shows the nearest examples, the class probabilities and where your drawing lands.
# (The first run trains a small network and keeps it on disk for the next runs.)
#
# **Predict first:** will your drawing's class come out on top? What if you draw it
# sloppily?

# %%
sketchpad = dk.widgets.Sketchpad()      # default: a small protonet on glyphs, 5-way 5-shot
sketchpad

# %% [markdown]
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
explorer.dataset.value = "glyphs"                      # leave it on glyphs for the reader
