# %% [markdown]
# # 06 · Embedding norms and the spherical embedding constraint (SEC)
#
# **After this notebook you can** explain why an angular loss's gradient depends on the
# embedding norm, write the SEC term, measure its effect on the norm spread and on
# accuracy over seeds (not one run), and add it to any embedding method with one
# argument. **Time:** at the default settings, without a stored SEC study, measured 27 s
# on a 2-core CPU (load average 1.6; 56 s on the same CPU busy with other work); with a
# stored study it reads it instead of running a quick one.
#
# Many metric losses in this course are **angular**: the histogram loss, the normalised
# triplet loss, normalised softmax, ArcFace ... all compare embeddings through the cosine
#
# $$\cos(f_i, f_j) = \frac{f_i^\top f_j}{\lVert f_i\rVert\,\lVert f_j\rVert},$$
#
# which does not change when you rescale $f_i$. So the **norm** $\lVert f_i\rVert$ of an
# embedding plays no part in the loss value. Does it play a part in *training*?
#
# (Not every loss is angular. The N-pair loss as Sohn wrote it, and as
# `dk.losses.get("npair")` gives it by default, uses *unnormalised* inner products
# $f_i^\top f_j$ plus a small penalty on the norms, so there the norm is part of the
# loss. The SEC paper trains the *normalised* variant, cosines times a scale:
# `dk.losses.get("npair", normalize=True, scale=5.0, l2_reg=0.0)`.)
#
# *Deep Metric Learning with Spherical Embedding* (Zhang, Li & Zhang, NeurIPS 2020) says
# yes, and fixes it with one line of loss. This notebook:
#
# 1. shows, numerically, why the norm sets the **step size** of an angular loss;
# 2. lets you write the **SEC** term yourself (exercise);
# 3. trains the same loss with and without SEC and compares the norm histograms;
# 4. puts SEC on the **adapted** embedding of notebook 05, one argument away.

# %%
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display

import dml_kit as dk
from dml_kit.settings import load_dataset, panel_data, pick
from dml_kit.viz.toy import cosine_gradient, sgd_turn_degrees

DATASET = "digits"   # or "glyphs"; or "mnist" / "omniglot": downloaded on first use
EPOCHS = pick(4, 1)  # source epochs per run (the fast setting CI uses: 1)
split = dk.data.domain_split(load_dataset(DATASET), seed=0)
print(f"dataset {DATASET}, {EPOCHS} source epoch(s) per run")

# %% [markdown]
# ## 1. The gradient of a cosine scales with 1/‖f‖
#
# Differentiate the cosine with respect to $f$ (SEC paper, Eq. 1):
#
# $$\frac{\partial \cos(f, g)}{\partial f} \;=\; \frac{1}{\lVert f\rVert}
#   \Big(\hat g - \cos(f, g)\,\hat f\Big), \qquad \hat f = \frac{f}{\lVert f\rVert}.$$
#
# Two facts follow. The bracket is **orthogonal** to $f$, so a gradient step turns $f$
# but (to first order) does not lengthen it; and its size is $\sin\theta$, so
#
# $$\Big\lVert \tfrac{\partial \cos}{\partial f} \Big\rVert = \frac{\sin\theta}{\lVert f\rVert}.$$
#
# A step of size $\eta\,\sin\theta/\lVert f\rVert$ on a vector of length $\lVert f\rVert$
# turns it by an angle of about $\eta\,\sin\theta/\lVert f\rVert^2$: **short embeddings
# spin fast, long ones barely move**, for the same loss. Let autograd confirm it:
# `cosine_gradient(f, g)` (from `dml_kit/viz/toy.py`) makes `f` a leaf that requires a
# gradient, computes `F.cosine_similarity(f, g)`, calls `.backward()` and returns `f.grad`.

# %%
g = torch.tensor([1.0, 0.0])                      # a fixed partner embedding
direction = F.normalize(torch.tensor([0.6, 0.8]), dim=0)  # f's direction (about 53 degrees)
sin_theta = float(torch.sqrt(1 - (direction @ g) ** 2))
table = pd.DataFrame({"norm ‖f‖": [0.25, 0.5, 1.0, 2.0, 4.0]})
grads = [cosine_gradient(n * direction, g) for n in table["norm ‖f‖"]]
table["‖gradient‖"] = [float(grad.norm()) for grad in grads]
table["‖f‖ · ‖gradient‖"] = table["norm ‖f‖"] * table["‖gradient‖"]
table["gradient · f"] = [float(grad @ (n * direction))
                         for grad, n in zip(grads, table["norm ‖f‖"], strict=True)]
print(f"sin(theta) = {sin_theta:.4f}")
table.round(4) + 0.0  # (+ 0.0 turns -0.0 into 0.0)

# %% [markdown]
# The third column is constant ($=\sin\theta$) and the fourth is zero: the gradient is
# exactly $\sin\theta/\lVert f\rVert$ long and orthogonal to $f$.
#
# ## Play: slide the norm
#
# The figure shows the gradient size (blue) and the angle one SGD step with learning
# rate $\eta = 0.1$ turns $f$ (orange), against $\lVert f\rVert$; the larger markers
# follow the slider.
#
# **Predict first:** if you halve $\lVert f\rVert$, by what factor does the gradient
# grow? And the angle turned per step? Write both down, then move the slider.

# %%
LR = 0.1
gradient_explorer = dk.widgets.CosineGradientExplorer(direction, g, lr=LR, norm=1.0)
gradient_explorer

# %% [markdown]
# The answer, computed with autograd and one SGD step at $\lVert f\rVert = 1$ and $0.5$:

# %%
grad_ratio = float(cosine_gradient(0.5 * direction, g).norm()
                   / cosine_gradient(direction, g).norm())
turn_ratio = sgd_turn_degrees(0.5 * direction, g, LR) / sgd_turn_degrees(direction, g, LR)
print(f"halving the norm multiplies the gradient by {grad_ratio:.2f} "
      f"and the angle turned per step by {turn_ratio:.2f}")

# %% [markdown]
# Compare with your prediction: the gradient follows $1/\lVert f\rVert$ and the turn
# about $1/\lVert f\rVert^2$ (a little less for a large step). In a batch whose norms
# range over a factor of 3, the effective learning rate of the angular loss then ranges
# over a factor of about 9: the short embeddings jitter, the long ones are stuck. The
# loss never sees the norms, so nothing in it keeps them in line.
#
# ## 2. SEC: pull every norm towards the batch's mean
#
# The fix is a penalty on the **spread** of the norms, not on their size:
#
# $$L_\text{sec} = \frac{1}{N}\sum_{i=1}^{N}\big(\lVert f_i\rVert_2 - \mu\big)^2,
#   \qquad \mu = \frac{1}{N}\sum_{i=1}^{N}\lVert f_i\rVert_2 \;\;(\text{no gradient}),$$
#
# $$L = L_\text{metric} + \eta\, L_\text{sec}.$$
#
# The radius $\mu$ is not learned: the batch chooses it, and SEC only makes all
# embeddings share it, so every one gets the same effective step size. (The paper's
# baseline, an L2 penalty on $\lVert f\rVert^2$, shrinks the norms instead; it helps less.)
#
# ### Exercise: write the SEC term
#
# `my_sec(embeddings)` takes a `(N, D)` tensor and returns the scalar $L_\text{sec}$.
# The checker compares values **and gradients** with `dk.regularizers.SEC`.
# Think about it: the official code detaches $\mu$. Does detaching change the gradient
# here? (Try both; the checker's message tells you why.)

# %%
def my_sec(embeddings: torch.Tensor) -> torch.Tensor:
    # your code here: norms of the rows, their (detached) mean, the mean squared deviation
    raise NotImplementedError


dk.exercises.check("sec", my_sec)

# %% [markdown]
# ## 3. Norm histograms with and without SEC
#
# The explorer trains the **same** metric loss twice on the source classes, with the
# same seed and data, once plain and once with SEC, then embeds a target task and draws
# the histogram of the embedding norms (the dashed line is SEC's target, the mean). The
# title gives the **coefficient of variation** $\mathrm{CV} = \mathrm{std}/\mathrm{mean}$
# of the norms and the 1-NN accuracy on the target task. While the two runs train, the
# live panel under the controls shows the current one (its title says which): the
# learning curves, the norms of a few source images and their projection.
#
# **Predict first:** with the histogram loss (it only sees cosines), how wide is the
# norm histogram without SEC? How much narrower with SEC at weight 1? Will accuracy
# move? Then press *Train both* (the next cell presses it for you once), change the SEC
# weight or the loss (`triplet` normalises its embeddings too; `contrastive` does not),
# and train again.

# %%
sec_explorer = dk.widgets.SECExplorer(panel_data(DATASET, split), loss="histogram",
                                      weight=1.0, epochs=EPOCHS)
sec_explorer.train_button.click()
sec_explorer

# %%
if sec_explorer.error:                   # a failed run says why here
    print(sec_explorer.error)
pd.DataFrame({"norm CV": sec_explorer.cv, "1-NN accuracy": sec_explorer.accuracy}).round(3)

# %% [markdown]
# Compare the two CVs and the two accuracies. On the paper's benchmarks (CUB-200,
# Cars196, SOP, In-Shop) adding SEC raised Recall@1 by 1.7 to 7.5 points, most for the
# plain triplet loss. But this is **one** run per setting, on one seed and one task:
# it cannot tell you whether the difference you see is SEC's doing or the luck of the
# draw. Move the SEC weight from 1 to 2 to 3 and train again: the CV need not fall
# each time. Three reasons a single run can mislead:
#
# * **Noise.** Each run is one draw of initial weights, batches and target task; the
#   CV moves by some hundredths from seed to seed, as much as a change of weight may.
# * **Different training lengths.** Early stopping restores the source epoch with the
#   best validation Recall@1. Two runs can stop at different epochs, and norms drift
#   apart the longer training goes, so two weights may be compared at different
#   training lengths.
# * **The weight is a balance, not a step size.** Adam rescales the *summed* gradient
#   of each parameter, so raising $\eta$ shifts the balance between the metric loss and
#   SEC rather than making steps larger; once the norms are nearly even, SEC has little
#   left to remove.
#
# ### SEC over seeds and weights
#
# To separate SEC from the noise, the next cell repeats the explorer's training for
# weights 0 (no SEC), 1 and 3 over several seeds (same data, same tasks: a seed's runs
# are paired); a bar and a table of the mean CV and accuracy so far per weight follow the
# runs. It prints each run's CV, accuracy and restored epoch (`best_epoch`): where
# one run of a seed was restored at an earlier epoch than the others, its CV was
# measured after less training, and the explorer's reading of that weight with it.

# %%
config = dk.experiments.PRESETS["classroom"].config.replace(
    loss="histogram", source_epochs=EPOCHS, batches_per_epoch=20)     # the explorer's
study = dk.compare.sec_weight_study(split.source, split.target, weights=[0, 1, 3],
                                    seeds=range(pick(4, 2)), config=config)
study.pivot_table(index="seed", columns="weight", values=["cv", "accuracy", "best_epoch"]
                  ).round(3)

# %% [markdown]
# **Claim 1: SEC (weight 1) narrows the norm distribution** of embeddings of unseen
# classes: CV without SEC minus CV with it, paired by seed. If it holds, the effect is
# larger than the seed-to-seed noise; if not resolved, this many seeds cannot separate
# it from noise.

# %%
# verdict: SEC at weight 1 lowers the norm CV on the target task (paired by seed)
cv_0, cv_1 = dk.stats.paired_values(study, 0.0, 1.0, column="weight", value="cv")
print(f"CV {cv_0.mean():.3f} without SEC, {cv_1.mean():.3f} with SEC 1 (n = {len(cv_0)} seeds)")
print("CV without - CV with SEC 1:", dk.stats.compare(cv_0, cv_1).text())

# %% [markdown]
# **Claim 2: a larger weight (3) narrows it further than weight 1.** If this is not
# resolved while claim 1 holds, SEC's effect on the CV saturates: most of the spread is
# gone at weight 1, and what one explorer run shows between weights 1, 2 and 3 is
# noise. If it holds, the weight still matters at these values.

# %%
# verdict: SEC at weight 3 lowers the norm CV further than weight 1 (paired by seed)
cv_1, cv_3 = dk.stats.paired_values(study, 1.0, 3.0, column="weight", value="cv")
print(f"CV {cv_1.mean():.3f} with SEC 1, {cv_3.mean():.3f} with SEC 3 (n = {len(cv_1)} seeds)")
print("CV with SEC 1 - CV with SEC 3:", dk.stats.compare(cv_1, cv_3).text())

# %% [markdown]
# **Claim 3: SEC (weight 1) raises the 1-NN accuracy** on the target task. The paper
# reports gains on large benchmarks after long training; our data are small and our
# runs short. If the claim is not resolved, compare the interval's width with the
# difference: this many seeds cannot see an effect smaller than about half that width.

# %%
# verdict: SEC at weight 1 raises the 1-NN accuracy on the target task (paired by seed)
acc_1, acc_0 = dk.stats.paired_values(study, 1.0, 0.0, column="weight", value="accuracy")
print(f"accuracy {acc_1.mean():.3f} with SEC 1, {acc_0.mean():.3f} without (n = {len(acc_1)})")
print("accuracy with SEC 1 - without:", dk.stats.compare(acc_1, acc_0).text())

# %% [markdown]
# ## 4. Adapted embeddings + SEC
#
# SEC is one argument of any method that trains an embedding:
# `regularizer="sec", regularizer_weight=...`. Here is the adapted metric embedding of
# notebook 05 (source training, then fine-tuning on the k-shot support set), with and
# without SEC, on one 5-way 5-shot target task: one run each, an example of the use,
# not evidence (the study above is the evidence for the plain embedding). The two
# source models are cached on disk (`cache=True`): a rerun only adapts and scores, and the
# live panel then says which models it loaded instead of training them.

# %%
task = dk.data.kshot_task(split.target, n_way=5, k_shot=5, seed=0)
live = dk.viz.LiveDashboard(class_names={"source": split.source.class_names,
                                         "adapt": task.class_names}, title="adapted, live")
display(live)
rows = []
for reg, weight in ((None, 0.0), ("sec", 1.0)):
    with_reg = config.replace(regularizer=reg, regularizer_weight=weight)
    source = dk.methods.train_source("embedding", split.source, with_reg, seed=0, cache=True,
                                     callbacks=[live])
    run = dk.methods.run("adapted_metric", task, source, with_reg, seed=0, callbacks=[live])
    emb = dk.metrics.embed(run.model, task.query_x)
    rows.append({"SEC": reg is not None, "accuracy": run.accuracy,
                 **dk.metrics.norm_stats(emb)})
adapted = pd.DataFrame(rows).set_index("SEC")
adapted.round(3)

# %% [markdown]
# ## 5. The paper's table: seven angular losses, with and without SEC
#
# The SEC paper's tables train each angular loss twice, without and with SEC, and report
# Recall@1/2/4, MAP@R and NMI on the test classes (its CUB Recall@1 gains: +1.7 to +7.5
# points, triplet 53.3 -> 60.8). `experiments.sec_study` does the same on glyphs: 100
# training and 100 test characters, the paper's weight for the triplet loss (1.0) and, for
# the others, the best of a small sweep scored on *validation* classes carved from the
# training classes (never the test classes), 3 seeds. The full study takes several
# minutes, so it runs from the command line and the notebook reads the store; without a
# stored study this cell runs a quick, smaller one (a bar and a table of the mean Recall@1
# so far per loss and run follow it) and prints the command.

# %%
from dml_kit.experiments import sec_study
from dml_kit.viz import studies

sec_frame, note = sec_study.stored_or_quick(
    "classroom", losses=pick(("triplet", "npair", "cosface"), ("triplet",)),
    seeds=pick(3, 2), train_classes=pick(40, 12), test_classes=pick(40, 12),
    source_epochs=pick(3, 1), batches_per_epoch=pick(20, 4))
print(note)
sec_study.sec_summary(sec_frame)

# %% [markdown]
# Each cell is a mean over seeds with its 95% interval; the gain is paired (the same seed
# trains both runs). The per-epoch curves are the paper's argument: under a cosine loss
# the norms grow and spread during training (dotted), with SEC they stay together (solid).

# %%
studies.sec_norm_curves(sec_study.norm_curves(sec_frame))

# %%
studies.sec_gain_bars(sec_study.sec_table(sec_frame))

# %%
# verdict: SEC raises Recall@1 and lowers the norm CV, per loss and over all losses
for line in sec_study.sec_verdicts(sec_frame).lines():
    print(line)

# %% [markdown]
# ## What to remember
#
# * Angular losses ignore the norm in the forward pass but not in the backward pass:
#   the gradient is $\sin\theta/\lVert f\rVert$ long and orthogonal to $f$.
# * Uneven norms mean uneven effective learning rates across a batch.
# * SEC, $\frac1N\sum_i(\lVert f_i\rVert-\mu)^2$ with the batch mean $\mu$, pulls them
#   together with one term and one weight, no new parameter; whether that changes
#   accuracy is a question for intervals over seeds, not for one run.
#
# **Paper.** Zhang, Li & Zhang, *Deep Metric Learning with Spherical Embedding*, NeurIPS
# 2020, arXiv 2011.02785 (Eq. 1, the SEC term, its tables of losses with and without SEC;
# official code: github.com/Dyfine/SphericalEmbedding). Adapted embeddings: Scott, Ridgeway &
# Mozer, NeurIPS 2018.
#
# Next, notebook 07 asks what happens when the target classes drift away from the source.
#
# ### Check (the course runs these cells in CI)
# Drive the widgets as a reader would and check what they show.

# %%
def snapshot(fig) -> str:
    """A fingerprint of what a figure currently draws (data and layout)."""
    return dk.viz.figure_fingerprint(fig, layout=True)


grad_fig = gradient_explorer.figure
before = snapshot(grad_fig)
gradient_explorer.norm.value = 0.5
assert gradient_explorer.error is None, gradient_explorer.error
assert snapshot(grad_fig) != before, "the gradient figure did not follow the slider"
assert np.isclose(grad_fig.data[2].y[0], sin_theta / 0.5, rtol=1e-4)  # Eq. 1: sin(theta)/||f||
assert np.allclose(table["‖f‖ · ‖gradient‖"], sin_theta, rtol=1e-4)
assert np.allclose(table["gradient · f"], 0, atol=1e-6)                # orthogonal to f
turn = {n: sgd_turn_degrees(n * direction, g, LR) for n in (0.5, 1.0)}
assert turn[0.5] > 3.5 * turn[1.0]                                      # ~1/||f||^2

# %%
assert sec_explorer.error is None, sec_explorer.error
assert sec_explorer.cv["with"] < sec_explorer.cv["without"], sec_explorer.cv
before = [snapshot(f) for f in sec_explorer.figures]
sec_explorer.weight.value = 3.0
sec_explorer.train_button.click()
assert sec_explorer.error is None, sec_explorer.error
assert [snapshot(f) for f in sec_explorer.figures] != before, "histograms were not redrawn"
assert sec_explorer.cv["with"] < sec_explorer.cv["without"], sec_explorer.cv
assert adapted.loc[True, "cv"] < adapted.loc[False, "cv"], adapted
assert all(0.2 < a <= 1 for a in adapted["accuracy"]), adapted  # better than chance (5-way)
print(f"norm CV without -> with SEC: explorer {sec_explorer.cv['without']:.3f} -> "
      f"{sec_explorer.cv['with']:.3f}; adapted {adapted.loc[False, 'cv']:.3f} -> "
      f"{adapted.loc[True, 'cv']:.3f}")
