# %% [markdown]
# # 04 · Few-shot learning: train on tasks that look like the test
#
# **After this notebook you can** sample training episodes, write the prototypical loss,
# train a prototypical network while watching it live, classify a new task by its
# nearest prototype, and test whether more shots give better prototypes. **Time:** at
# the default settings, measured 8 s on a 2-core CPU (load average 0.8-1.7), from an empty
# data folder (51 s on a machine busy with other work).
#
# > The metric embedding of notebook 03 was trained on batches of many classes, then used
# > on 5-way 1-shot tasks. Why not train it on 5-way 1-shot tasks in the first place?
#
# That is the idea of **few-shot learning** by *episodes* (Vinyals et al. 2016): during
# source training, every step is a small task, an **episode**, with $n$ classes, $k$
# support and $q$ query examples each, and the network is rewarded for classifying the
# episode's queries from its support. The most influential method of this kind is the
# **prototypical network** (Snell et al. 2017), the few-shot method of Scott et al.

# %%
from types import SimpleNamespace

from IPython.display import display

import dml_kit as dk
from dml_kit.compare import compare_on_tasks, embedding_1nn, nearest_prototype, pixel_1nn
from dml_kit.settings import load_dataset, pick

DATASET = "glyphs"   # or "omniglot" / "mnist": downloaded on first use (it says what, where)
split = dk.data.domain_split(load_dataset(DATASET), seed=0)
source = split.source.select_classes(range(min(split.source.n_classes, pick(150, 40))))  # CPU-sized
config = dk.experiments.PRESETS["classroom"].config.replace(
    source_epochs=pick(4, 2), source_patience=4, episodes_per_epoch=pick(30, 6),
    query_per_class=5)

# %% [markdown]
# ## Episodes
#
# An `EpisodeSampler` draws episodes from the *source* labels: $n$ random classes,
# $k + q$ random examples of each, split into support and queries, labels renamed
# $0 \dots n-1$. Each episode is a miniature of the target task.

# %%
sampler = dk.data.EpisodeSampler(source.y, n_way=5, k_shot=1, q_query=3, n_episodes=3,
                                 seed=0)
episodes = list(sampler)
ep = episodes[0]
print(*episodes, sep="\n")
view = SimpleNamespace(support_x=source.x[ep.support_idx], support_y=ep.support_y,
                       query_x=source.x[ep.query_idx], query_y=ep.query_y,
                       class_names=[source.class_names[c] for c in ep.classes])
dk.viz.task_gallery(view, n_query=3, title="One 5-way 1-shot training episode")

# %% [markdown]
# ## Prototypical networks
#
# Embed the support; the **prototype** of class $j$ is the mean of its $k$ support
# embeddings,
# $$c_j = \frac{1}{k} \sum_{(x_i, y_i) \in S,\; y_i = j} f_\theta(x_i).$$
# A query $x$ gets a softmax over the negative squared distances to the prototypes,
# $$p(y = j \mid x) = \frac{\exp(-\lVert f_\theta(x) - c_j \rVert^2)}
#   {\sum_{j'} \exp(-\lVert f_\theta(x) - c_{j'} \rVert^2)},$$
# and the loss of an episode is the mean negative log-probability of the queries' true
# classes. At test time the same rule classifies the target queries: **nearest
# prototype**. With $k = 1$ the prototype *is* the support example, so nearest prototype
# and 1-NN coincide; with more shots the mean averages out the quirks of single examples.

# %% [markdown]
# ## Exercise: the prototypical loss
#
# Write `prototypical_loss(support_emb, support_y, query_emb, query_y)` returning the mean
# loss over the queries as a 0-d tensor. Labels are `0 .. n-1`.
#
# *Hint:* stack the class means into an `(n, D)` tensor, compute `(Q, n)` squared
# distances, and hand their negatives to `torch.nn.functional.cross_entropy` as logits.

# %%
def prototypical_loss(support_emb, support_y, query_emb, query_y):
    # your code here
    raise NotImplementedError


dk.exercises.check("prototypical_loss", prototypical_loss)

# %% [markdown]
# ## Train a protonet on source episodes
#
# Scott et al. train with episodes shaped like the target task (here 5-way 5-shot, five
# queries per class) and stop when the prototype accuracy on held-out source examples
# stops improving. The panel draws the episode loss, the validation accuracy, the norms
# and a projection of held-out source images while it trains.

# %%
history = dk.callbacks.HistoryCallback()
live = dk.viz.LiveDashboard(class_names=source.class_names, title="protonet, live")
display(live)
protonet = dk.methods.train_source("protonet", source, config, n_way=5, k_shot=5,
                                   callbacks=[history, live])
print(f"source validation accuracy {protonet.val_score:.3f} after "
      f"{protonet.train.epochs} epochs ({protonet.seconds:.0f} s)")
dk.viz.learning_curves(history.epochs, history.steps, title="Protonet: source episodes")

# %% [markdown]
# ## Nearest-prototype classification on the target
#
# The trained network is frozen. For a target task we embed the support and the queries,
# compute the prototypes, and classify. The method `protonet` does exactly this; we also
# compare with 1-NN in the same embedding (same squared Euclidean distance) and with
# 1-NN on pixels.
#
# **Predict first:** at $k = 1$ the prototype rule and 1-NN are the same rule. How far
# apart will they be at $k = 10$, and which one wins?

# %%
rules = {"nearest prototype": nearest_prototype(protonet.model),
         "1-NN (embedding)": embedding_1nn(protonet.model, distance="sqeuclidean"),
         "1-NN (pixels)": pixel_1nn}
results = compare_on_tasks(split.target, rules, n_way=5, k_values=[1, 2, 5, 10],
                           seeds=range(pick(10, 3)))     # frozen model: tasks are cheap
print(results.pivot_table(index="method", columns="k", values="accuracy").round(3))
dk.viz.accuracy_vs_k(results, chance=1 / 5,
                     title=f"{DATASET}, 5-way: frozen protonet on new classes")

# %%
task = dk.data.kshot_task(split.target, n_way=5, k_shot=5, seed=0)
run = dk.methods.run("protonet", task, protonet, config)
by_hand = rules["nearest prototype"](task)
print(f"dk.methods.run('protonet'): {run.accuracy:.3f}; by hand: {by_hand:.3f}")

# %% [markdown]
# ## Play: prototypes and queries
#
# The figure shows a target task in the protonet's embedding (PCA to 2-D): the queries as
# dots, the prototypes as stars. The slider sets $k$; each value draws a new support set
# and recomputes the prototypes, with no retraining.
#
# **Predict first:** as $k$ grows, where do the stars move relative to the clouds of
# queries of their class?

# %%
view = dk.widgets.PrototypeExplorer(split.target, protonet.model, n_way=5, k_shot=1,
                                    n_query=15, max_shot=10)
view

# %% [markdown]
# ### What you see: three claims, checked on your run
#
# Each claim is checked on the same tasks (one per seed and $k$) as a mean paired
# difference with its 95% interval: **holds** if the whole interval is above zero,
# **fails** if below, **not resolved at this sample size** if it straddles zero.
#
# **Claim 1: the protonet transfers.** It was never shown a target class; if nearest
# prototype in its embedding beats 1-NN on pixels, it learned *how to compare* in a way
# that carries over to new classes, like the metric embedding of notebook 03. Look at
# how the difference changes with $k$: the pixel rule improves with shots too (notebook
# 01). Where it is not resolved, this run cannot tell the frozen embedding from raw
# pixels at that $k$.

# %%
# verdict: nearest prototype in the protonet embedding beats 1-NN on pixels, per k
table = dk.stats.paired_table(results, "nearest prototype", "1-NN (pixels)")
print(table.drop(columns=["low", "high"]).round(3).to_string(index=False))

# %% [markdown]
# **Claim 2: more shots give better prototypes.** Nearest-prototype accuracy at
# $k = 10$ against $k = 1$, paired by seed (a seed's tasks share their five classes; the
# support and query images differ). If it holds, the averaged prototypes are better
# guides than single examples: in the explorer, the stars settle in the middle of their
# clouds as $k$ grows.

# %%
# verdict: nearest prototype is more accurate at k = 10 than at k = 1 (same classes)
prototype = results[results["method"] == "nearest prototype"]
at_10, at_1 = dk.stats.paired_values(prototype, 10, 1, column="k")
print(f"nearest prototype: {at_10.mean():.3f} at k = 10, {at_1.mean():.3f} at k = 1 "
      f"(n = {len(at_1)} seeds)")
print("k = 10 minus k = 1:", dk.stats.compare(at_10, at_1).text())

# %% [markdown]
# **Claim 3: the prototype rule beats 1-NN in the same embedding.** At $k = 1$ the two
# are the same rule (a prototype of one example *is* the example), so the difference is
# zero there by construction (the check cell at the end asserts it) and the claim is
# checked for $k \ge 2$ only. At larger $k$ the
# prototype rule assumes each class is one round cloud around its mean, which is what
# the protonet loss trains for; after a short training the clouds can still be
# elongated or split, and then the nearest single example may be the better guide. A
# verdict that holds says the training got the clouds round enough; one that fails says
# they are not; "not resolved" means this many tasks cannot tell the rules apart.

# %%
# verdict: nearest prototype beats 1-NN in the same embedding, per k >= 2
table = dk.stats.paired_table(results[results["k"] >= 2], "nearest prototype",
                              "1-NN (embedding)")
print(table.drop(columns=["low", "high"]).round(3).to_string(index=False))

# %% [markdown]
# ## Draw your own character
#
# The protonet was trained on printed glyphs. What does it make of *your* handwriting?
# Draw on the canvas below with the mouse (one of the task's five characters is shown in
# each frame under it). After every stroke the drawing is shrunk to 28×28 like the
# glyphs (its ink box centred and scaled to their typical size), embedded, and the panel
# shows its nearest support images, the probabilities
# $p(y = j \mid x) = \operatorname{softmax}_j(-\lVert f(x) - c_j \rVert^2)$ of the task's
# five classes (the same rule as above), and where it lands among the support set.
#
# **Predict first:** draw one of the five characters carefully. Will its class come out on
# top, and with what probability? Then draw it again, sloppier, or only half of it: which
# moves first, the top class or its probability? Where does the ring land relative to the
# star of the class you meant?

# %%
sketch = dk.widgets.Sketchpad(protonet, task)   # the frozen protonet, the 5-way 5-shot task
sketch

# %% [markdown]
# ## The real thing: Omniglot's one-shot challenge
#
# Glyphs are our classroom stand-in. The benchmark that made few-shot learning famous is
# **Omniglot** (Lake, Salakhutdinov & Tenenbaum, *Science* 2015): 1,623 handwritten
# characters from 50 alphabets, 20 drawers each. Its official test is 20 *runs*: each
# shows one drawing of each of 20 new characters (one alphabet nobody trained on) and asks
# for the character of 20 other drawings, 400 answers in all. People get 4.5% of them
# wrong; Lake's hand-built baseline (a modified Hausdorff distance between strokes) 38.8%.
#
# A protonet trained on the CPU for about ten minutes on the 30 background alphabets
# (their characters turned by 90, 180 and 270 degrees count as new classes, as Snell et
# al. train) takes the same test below. Where does it land between pixels and people?
# The intervals are over the 400 test drawings: another training run would move the
# figure too.

# %%
from IPython.display import display

from dml_kit.experiments import one_shot

yardstick = one_shot.stored_result()     # data/omniglot_one_shot.json, when it was run
if yardstick is None:
    print("No stored result yet. With Omniglot's files (../shared/data/omniglot, or\n"
          f"download=True) run, about ten minutes on 2 cores:\n    {one_shot.COMMAND}")
else:
    print(one_shot.describe(yardstick))
    display(one_shot.comparison_figure(yardstick))

# %% [markdown]
# ## What to remember
#
# * Episodic training makes every source step a small n-way k-shot task, the shape of
#   the test.
# * A prototype is the mean of a class's support embeddings; a query takes the class of
#   the nearest prototype (squared Euclidean distance), the same rule as training.
# * At $k = 1$ the prototype rule *is* 1-NN; whether averaging pays at larger $k$, and
#   whether the frozen embedding beats pixels, is what your verdicts above say.
#
# **Papers.** Snell, Swersky & Zemel, *Prototypical Networks for Few-shot Learning*,
# NeurIPS 2017. Vinyals et al., *Matching Networks for One Shot Learning*, NeurIPS 2016
# (episodes). Lake, Salakhutdinov & Tenenbaum, *Science* 2015 (Omniglot's one-shot runs).
#
# The next notebook asks the obvious follow-up: the support set is labelled, so why not
# also *train* on it? The **adapted** methods fine-tune the embedding on the target's
# support; Scott et al. report that they beat everything else, and 05 checks it on your run.
#
# ## Check (the course runs these cells in CI)

# %%
shown = dk.viz.figure_fingerprint     # a string that changes when a figure's data does
before = shown(view.figure)
view.k_shot.value = 5
assert view.error is None, view.error
assert shown(view.figure) != before and 5 in view.accuracy  # the view followed the slider
assert "5-shot" in view.figure.layout.title.text
assert len(view.figure.data) == 5 + 1                        # five classes + prototypes

# %%
# the sketchpad on the task's own images: the first query image of each class, as a drawing
hits = []
for c in range(task.n_way):
    sketch.set_image(task.query_x[task.query_y == c][0])
    assert sketch.error is None and abs(sketch.probabilities.sum() - 1) < 1e-9
    hits.append(sketch.prediction == c)
sketch.draw_strokes([[[40, 200], [112, 24], [184, 200]], [[70, 130], [154, 130]]])  # an "A"
assert sketch.predicted_class in task.class_names and len(sketch.neighbours) == 6
sketch.clear()                                       # leave the canvas empty for the reader
print(f"sketchpad: {sum(hits)} of {task.n_way} query images predicted as their class "
      f"(nearest prototype over all {len(task.query_y)} queries: {run.accuracy:.2f})")

# %%
mean = results.groupby(["method", "k"])["accuracy"].mean().unstack()
assert results["accuracy"].between(0, 1).all()
assert abs(run.accuracy - by_hand) < 1e-9                             # the method = by hand
one = results[results["k"] == 1].pivot_table(index="seed", columns="method", values="accuracy")
assert (one["nearest prototype"] - one["1-NN (embedding)"]).abs().max() < 1e-9   # same at k=1
assert (mean.loc["nearest prototype"] > 1 / 5).all()                    # far from chance
assert mean.loc["nearest prototype", 10] >= mean.loc["nearest prototype", 1] - 0.02
mean.round(3)
