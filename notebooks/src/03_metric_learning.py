# %% [markdown]
# # 03 · Deep metric learning: learn a distance, not a classifier
#
# **After this notebook you can** compute the distances metric learning uses, write the
# triplet loss, train a histogram-loss embedding while watching it live, score an
# embedding by Recall@K and MAP@R, and explain why Recall@1 is not k-shot accuracy.
# **Time:** at the default settings, measured 12 s on a 2-core CPU (load average 1.5),
# from an empty data folder (80 s on a machine busy with other work).
#
# > Notebook 02 asked whether the 1-NN rule on the source *features*, with no training
# > on the target at all, can match fine-tuning. What if we train those features **for**
# > comparing examples?
#
# A **deep metric learning** (DML) network $f_\theta$ maps an image to an embedding
# vector so that examples of the same class land close together and examples of
# different classes far apart. It never learns "which class": so it works on classes it
# has never seen. On a k-shot task we embed the support and give each query the label of
# its nearest support example. This is the *histogram loss* method of Scott et al., and
# their first conclusion: deep embeddings transfer better than weight transfer.

# %%
import pandas as pd
import torch
from IPython.display import display

import dml_kit as dk
from dml_kit.compare import compare_losses, compare_on_tasks, embedding_1nn, pixel_1nn
from dml_kit.settings import load_dataset, panel_data, pick

DATASET = "glyphs"   # or "omniglot" / "mnist": downloaded on first use (it says what, where)
split = dk.data.domain_split(load_dataset(DATASET), seed=0)
source = split.source.select_classes(range(min(split.source.n_classes, pick(150, 40))))  # CPU-sized
config = dk.experiments.PRESETS["classroom"].config.replace(
    source_epochs=pick(3, 2), source_patience=3, batches_per_epoch=pick(25, 5))

# %% [markdown]
# ## Distances
#
# Three distances between embeddings $u, v \in \mathbb{R}^D$ run through the literature:
# $$d_{\mathrm{E}}(u, v) = \lVert u - v \rVert_2, \qquad
#   d_{\mathrm{E}^2}(u, v) = \lVert u - v \rVert_2^2, \qquad
#   d_{\cos}(u, v) = 1 - \frac{u^\top v}{\lVert u\rVert\,\lVert v\rVert}.$$
# The cosine distance ignores the lengths (norms) of the vectors: only their directions
# count. For unit vectors, $d_{\mathrm{E}^2} = 2\, d_{\cos}$. Notebook 06 is about what
# ignoring the norm does to training.

# %%
u = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
pd.DataFrame({name: dk.losses.pairwise_distance(u, distance=name)[0].tolist()
              for name in ("euclidean", "sqeuclidean", "cosine")},
             index=["u0 to u0", "u0 to u1 (same direction)", "u0 to u2 (orthogonal)"])

# %% [markdown]
# ## Two families of losses
#
# **Pair-based losses** look at pairs or triplets of examples in a batch. With anchor
# $a$, positive $p$ (same class) and negative $n$ (another class):
#
# * *contrastive*: $\;\ell = [y_{ij} = 1]\, d_{ij}^2 + [y_{ij} = 0]\, [m - d_{ij}]_+^2$
#   pulls positives together and pushes negatives beyond a margin $m$;
# * *triplet*: $\;\ell(a, p, n) = [\, d(a,p) - d(a,n) + m \,]_+$ only asks the positive to
#   be closer than the negative, by a margin;
# * *histogram*: compares the whole *distributions* of positive and negative similarities
#   (below, in depth).
#
# **Proxy-based losses** learn one vector $w_c$ per source class (a *proxy*) and compare
# each example with the proxies instead of with other examples, e.g. normalised softmax
# $\;\ell = -\log \frac{\exp(\cos(f(x), w_y)/\tau)}{\sum_c \exp(\cos(f(x), w_c)/\tau)}$.
# They see every class in every step and converge fast, but own parameters that are
# useless on new classes. The library has them all, with their parameters:

# %%
pd.DataFrame([{"loss": n, "family": s.kind, "parameters": s.params, "what": s.description}
              for n in dk.losses.available() for s in [dk.losses.spec(n)]]).set_index("loss")

# %% [markdown]
# ## Exercise: the triplet loss
#
# Write `triplet_loss(embeddings, labels, margin)` over **all valid triplets** of a batch
# ($a \ne p$ with the same label, $n$ with another label), with the squared Euclidean
# distance, averaged over the **active** triplets (those with a positive loss):
# $$\mathcal{L} = \frac{1}{|\{\ell > 0\}|} \sum_{(a,p,n)} \big[\lVert f_a - f_p\rVert^2 -
#   \lVert f_a - f_n\rVert^2 + m\big]_+ .$$
# *Hint:* `torch.cdist(e, e).pow(2)` gives all distances; broadcasting `d[:, :, None] -
# d[:, None, :]` gives all $(a, p, n)$ combinations at once; mask the invalid ones.

# %%
def triplet_loss(embeddings, labels, margin):
    # your code here
    raise NotImplementedError


dk.exercises.check("triplet_loss", triplet_loss)

# %% [markdown]
# ## The histogram loss, in depth
#
# Ustinova & Lempitsky (2016) look at a batch of L2-normalised embeddings and all its
# pairs: the cosine similarities $s^+$ of **positive** pairs and $s^-$ of **negative**
# pairs. Their distributions $p^+$ and $p^-$ are estimated as histograms on $R$ nodes
# $t_r$ between $-1$ and $1$ (each similarity is split between its two nearest nodes, so
# the histogram is differentiable). The loss is the probability that a random negative
# pair is **more similar** than a random positive pair:
# $$\mathcal{L} = \sum_{r=1}^{R} p^-_r\, \Phi^+_r, \qquad \Phi^+_r = \sum_{q \le r} p^+_q .$$
# No margin to tune: it only asks the two histograms to stop overlapping. Scott et al.
# found it the most robust loss for transfer.
#
# We train a histogram-loss embedding on the source classes, recording a few probe
# examples at every epoch; the panel shows the loss, Recall@1 on held-out source images,
# the norms and the probes' projection while it trains.

# %%
history = dk.callbacks.HistoryCallback(keep_probes=True)
live = dk.viz.LiveDashboard(class_names=source.class_names, title="histogram loss, live")
display(live)
emb_model = dk.methods.train_source("embedding", source, config.replace(loss="histogram"),
                                    callbacks=[history, live])
print(f"source validation Recall@1 {emb_model.val_score:.3f}, "
      f"{emb_model.train.epochs} epochs, {emb_model.seconds:.0f} s")


# %% [markdown]
# Now the two histograms on **target** classes the network has never seen, before
# (raw pixels) and after training. `dk.viz.pair_similarities` collects $s^+$ and $s^-$
# from a set of embeddings (every pair once); `dk.viz.pair_similarity_histogram` draws
# them and puts the histogram loss of the set in the title.

# %%
target = split.target.select_classes(range(min(split.target.n_classes, pick(100, 30))))
target_emb = dk.metrics.embed(emb_model.model, target.x)
sample = torch.arange(0, len(target.y), 4)      # every 4th image keeps the pair count small
dk.viz.pair_similarity_histogram(target.x.flatten(1)[sample], target.y[sample],
                                 title="raw pixels").show()
dk.viz.pair_similarity_histogram(target_emb[sample], target.y[sample],
                                 title="trained embedding, unseen classes")

# %% [markdown]
# ## Replay the training
#
# The slider walks through the epochs of the run above. Top: a PCA projection of the
# probe embeddings (source validation examples), aligned from epoch to epoch. Bottom:
# their $p^+$ and $p^-$.
#
# **Predict first:** as the epochs go by, what happens to the overlap of the two
# histograms, and to the clusters? Which moves first?

# %%
replay = dk.widgets.EpochReplay(history.probes, source.class_names, phase="source",
                                images=history.probe_inputs["source"])  # hover or click a point
replay

# %% [markdown]
# The answer on your run: the histogram loss of the probe set, the probability that a
# random negative pair is more similar than a random positive one (the overlap of $p^+$
# and $p^-$), at the first and at the last epoch of the replay.

# %%
histogram_loss = dk.losses.get("histogram")
overlap = [float(histogram_loss(torch.as_tensor(emb), torch.as_tensor(y)))
           for _, emb, y in (replay.frames[0], replay.frames[-1])]
first, last = replay.frames[0][0], replay.frames[-1][0]
print(f"probe overlap: {overlap[0]:.3f} at epoch {first}, {overlap[1]:.3f} at epoch {last}: "
      f"it {'shrank' if overlap[1] < overlap[0] else 'did not shrink'} during training")

# %% [markdown]
# ## Measuring an embedding: Recall@K and MAP@R
#
# Metric learning is scored by **retrieval** on held-out classes: every example queries
# all others (leave-one-out).
#
# * **Recall@K**: the fraction of queries with at least one same-class example among
#   their $K$ nearest neighbours. Recall@1 is the accuracy of a 1-NN rule whose
#   reference set is *every other image of every class*: not the same number as a
#   k-shot task's accuracy, where the references are $k$ support images per class (we
#   measure both below).
# * **MAP@R** (Musgrave et al. 2020): for a query with $R$ same-class examples, look at
#   its $R$ nearest neighbours and average the precision at each hit,
#   $\mathrm{AP@R} = \frac{1}{R}\sum_{i=1}^{R} P(i)\,\mathrm{rel}(i)$. It rewards putting
#   *all* the class near the query, not just one example.

# %%
def retrieval(emb, labels):
    r = dk.metrics.recall_at_k(emb, labels, ks=(1, 4))
    return {"Recall@1": r[1], "Recall@4": r[4], "MAP@R": dk.metrics.map_at_r(emb, labels)}


scores = pd.DataFrame({"raw pixels": retrieval(target.x.flatten(1), target.y),
                       "histogram embedding": retrieval(target_emb, target.y)}).T
scores.round(3)

# %% [markdown]
# Compare the two rows column by column. On `glyphs`, raw pixels are a strong baseline:
# one character rendered in different fonts still overlaps in pixel space. The two
# metrics can disagree: MAP@R rewards gathering a *whole class* around each query,
# Recall@1 only asks for one same-class image on top. If the embedding wins on MAP@R but
# not on Recall@1, training has started to organise classes but not yet to beat
# pixel-level template matching for the single nearest image; if it wins on both, the
# learned distance is better for retrieval outright.
#
# The score that matters for transfer is the k-shot task. **Claim: on 5-way tasks of
# unseen glyph classes, 1-NN in the histogram embedding beats 1-NN on pixels**, paired
# on the same tasks. If it holds, the short source training already transfers; if it
# fails, this much training has not yet beaten template matching (try
# `source_epochs=10` in the setup cell if you have a few minutes, and run again).

# %%
# verdict: on unseen glyph classes, 1-NN in the histogram embedding beats 1-NN on pixels
kshot = compare_on_tasks(split.target, {"histogram embedding": embedding_1nn(emb_model.model),
                                        "raw pixels": pixel_1nn},
                         n_way=5, k_values=[1, 5], seeds=range(pick(10, 3)))
table = dk.stats.paired_table(kshot, "histogram embedding", "raw pixels")
print(table.drop(columns=["low", "high"]).round(3).to_string(index=False))

# %% [markdown]
# ## See the neighbours
#
# The scores above average over every image; the gallery shows one query at a time.
# Its top row ranks all the other target images by the cosine similarity of their raw
# pixels, its bottom row by the histogram embedding. A **green** frame is a neighbour of
# the query's class, a **red** one another class; per query, Recall@1 is 1 when the
# first neighbour is green, and precision@k is the share of green among the k.
#
# Pick a query by its index, by clicking an image of the strip, or at random; click any
# neighbour to make it the next query.
#
# **Look for** queries where the two rows disagree. When pixels go wrong, what do the red
# neighbours share with the query: stroke width, size, position, or shape? When the
# embedding goes wrong, does its red neighbour look like the query to you?

# %%
gallery = dk.widgets.RetrievalGallery(target, emb_model.model, k=8,
                                      label="histogram embedding")
gallery

# %% [markdown]
# ## Losses side by side
#
# Which loss gives the best embedding? We train several for the same short budget on
# `digits`, in the paper's MNIST protocol (source: digits 0-4, target: 5-9, a few
# seconds each), and score retrieval on the target digits and the accuracy of 1-NN on
# 5-way 1-shot tasks (`dk.compare.compare_losses`: the same tasks for every loss). A bar
# and a table of the mean 1-shot accuracy so far per loss follow the loop.
#
# **Predict first:** will the proxy losses (one learned vector per source class) or the
# pair losses transfer better to the unseen digits?

# %%
digits = dk.data.domain_split(dk.data.load("digits"), seed=0)
quick = config.replace(source_epochs=pick(5, 2), batches_per_epoch=pick(15, 5))
LOSSES = ["contrastive", "triplet", "multi_similarity", "histogram", "normsoftmax",
          "proxy_anchor"]
side_by_side, one_shot = compare_losses(digits.source, digits.target, LOSSES, quick,
                                        n_way=5, k_shot=1, seeds=range(pick(10, 3)))
side_by_side.round(3)

# %% [markdown]
# ### Recall@1 is not k-shot accuracy
#
# Look at the two accuracy columns: Recall@1 and 5-way 1-shot accuracy are both
# accuracies of a nearest-neighbour rule in the same embedding, on the same target
# digits, yet they can be far apart. The difference is the **reference set**:
#
# * Recall@1 lets each target image look among *all the other* target images (printed
#   below: hundreds per class). One of its many same-class neighbours only has to be the
#   closest image overall.
# * A 1-shot task gives one **randomly drawn** support image per class. A query is right
#   only if that single image of its class is closer than the single image of each of the
#   four others; an atypical support image drags its whole class down.
#
# **Claim: Recall@1 is above 5-way 1-shot accuracy, for every loss** (per loss: Recall@1
# minus the accuracy of each task, with the interval over the tasks). If it holds,
# retrieval scores overstate what the embedding does with one example per class, and
# papers' Recall@1 cannot be read as few-shot accuracy.

# %%
# verdict: Recall@1 on the target digits is above their 5-way 1-shot accuracy, for every loss
per_class = digits.target.class_counts
print(f"{len(digits.target.y)} target digits, {per_class.min()}-{per_class.max()} per class")
for loss, shots in one_shot.groupby("method", sort=False)["accuracy"]:
    gap = dk.stats.mean_ci([side_by_side.loc[loss, "Recall@1"] - a for a in shots])
    print(f"{loss:>16}: Recall@1 - 1-shot accuracy = {dk.stats.verdict(gap).text()}")

# %% [markdown]
# Which loss is best here? Compare the 1-shot intervals: where two losses' intervals
# overlap widely, this run cannot rank them (each loss was trained once, on one seed,
# and evaluated on the same few tasks). Rerun with another seed before drawing
# conclusions; the capstone, notebook 08, compares methods properly with the grid runner.
#
# ## Play: pick a loss, watch the embedding train
#
# The runner trains a `metric` embedding with the loss you pick on source characters
# and shows it live: learning curves, embedding norms, and the probe embeddings moving in
# 2-D (switch the projection to **umap** for a non-linear view; UMAP layouts arrive at
# epoch ends once it has warmed up). Then it classifies a target task by 1-NN.
# It starts with one histogram-loss run.
#
# **Predict first:** pick `triplet`, then `proxy_anchor`. Which one separates the probe
# classes faster? Which one moves the norms more?

# %%
runner = dk.widgets.MethodRunner(panel_data(DATASET, split), method="metric",
                                 loss="histogram", k_shot=1, epochs=pick(2, 1), batches_per_epoch=pick(10, 4),
                                 config=config)
runner.train_button.click()      # a first run, so that the dashboard has something to show
runner

# %% [markdown]
# ## What to remember
#
# * A metric embedding is trained to put same-class images close and other classes far;
#   it never learns *which* class, so it applies to classes it has never seen.
# * The histogram loss, $\sum_r p^-_r \Phi^+_r$, asks the positive and negative
#   similarity distributions to stop overlapping, with no margin to tune.
# * Retrieval scores (Recall@K, MAP@R) and k-shot accuracy answer different questions:
#   your verdict above measured the gap between Recall@1 and 1-shot accuracy.
# * One run per loss cannot rank losses; compare their intervals, then use seeds (08).
#
# **Papers.** Ustinova & Lempitsky, *Learning Deep Embeddings with Histogram Loss*,
# NeurIPS 2016. Scott, Ridgeway & Mozer, *Adapted Deep Embeddings*, NeurIPS 2018.
# Musgrave, Belongie & Lim, *A Metric Learning Reality Check*, ECCV 2020 (MAP@R).
# Schroff et al., *FaceNet*, CVPR 2015 (the triplet loss).
#
# ## Check (the course runs these cells in CI)
#
# Drive the replay slider and the runner's loss picker as a reader would, check that
# the figures follow, then check that the numbers make sense.

# %%
shown = dk.viz.figure_fingerprint     # a string that changes when a figure's data does
before = shown(replay.scatter), shown(replay.histogram)
replay.epoch.value = 0
assert replay.error is None, replay.error
assert shown(replay.scatter) != before[0] and shown(replay.histogram) != before[1]
assert len(replay.frames) == emb_model.train.epochs >= 2

before = shown(runner.dashboard.projection_fig)
runner.loss.value = "triplet"
runner.train_button.click()
assert runner.error is None, runner.error
assert [r["loss"] for r in runner.results] == ["histogram", "triplet"]
assert shown(runner.dashboard.projection_fig) != before
print("runner:", runner.results)

# %%
before = shown(gallery.figure)
gallery.query.value = 1
assert gallery.error is None and shown(gallery.figure) != before
assert gallery.figure.layout.meta["query"] == 1
nearest = gallery.neighbours["raw pixels"][0]
dk.widgets.click(gallery.figure, 1, 1)      # click the first pixel neighbour: the new query
assert gallery.query.value == nearest and gallery.history[-2:] == [1, nearest]
shown_nn = gallery.neighbours["histogram embedding"]
hits = [bool(target.y[i] == target.y[nearest]) for i in shown_nn]
assert gallery.recall_at_1["histogram embedding"] == float(hits[0])
assert gallery.precision_at_k["histogram embedding"] == sum(hits) / 8
assert f"Recall@1 = {float(hits[0]):.0f}" in gallery.summary.value
print("gallery:", gallery.history, gallery.recall_at_1, gallery.precision_at_k)

# %%
assert scores.to_numpy().min() >= 0 and scores.to_numpy().max() <= 1
assert (scores["Recall@4"] >= scores["Recall@1"]).all()          # Recall@K grows with K
assert scores.loc["histogram embedding", "Recall@1"] > 2 / target.n_classes   # >> chance
pos, neg = dk.viz.pair_similarities(target_emb[sample], target.y[sample])
assert pos.mean() > neg.mean()          # unseen classes: positives more similar than negatives
numbers = side_by_side.select_dtypes("number")
assert numbers.to_numpy().min() >= 0 and numbers.to_numpy().max() <= 1
assert side_by_side["5-way 1-shot"].max() > 1 / 5
side_by_side.round(3)
