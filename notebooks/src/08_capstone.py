# %% [markdown]
# # 08 · Capstone: design your own study
#
# **After this notebook you can** turn a question into a small controlled study
# (variants, seeds, tasks, methods the change can reach), run it with the grid runner
# while its running table fills in, report means with intervals and paired verdicts, and
# write Recall@1 yourself. **Time:** at the default settings, measured 9 s on a 2-core CPU
# (load average 0.8-1.7), from an empty data folder.
#
# You have met every piece: k-shot tasks (01), weight transfer (02), metric learning
# (03), few-shot learning (04), the adapted hybrids and the full comparison (05),
# embedding norms and SEC (06), distribution shift (07). Now you run the loop a
# researcher runs:
#
# > **question → prediction → design → run → report → conclusion**
#
# The notebook walks you through it with a worked example you can keep or replace:
#
# > *Does the spherical embedding constraint (06) help the adapted embedding (05), and
# > does the answer depend on k?*
#
# Other questions the kit can answer in a few minutes:
#
# * Which embedding loss transfers best: `histogram` (the paper's), `triplet`,
#   `contrastive`, `multi_similarity`, `proxy_anchor`? (`loss=...`)
# * Does the ranking of the six methods on `glyphs` hold on `digits`?
# * Weight transfer fine-tunes every layer; is `head_only=True` better at k = 1?
# * How many seeds does it take before a 1-point difference means anything?

# %%
import tempfile
import textwrap
from pathlib import Path

import pandas as pd
from IPython.display import display

import dml_kit as dk
from dml_kit import experiments
from dml_kit.settings import data_path, fast_mode, load_dataset, pick
from dml_kit.viz.progress import GridProgress

DATASET = "digits"   # or "glyphs" (slower); "mnist" / "omniglot": downloaded on first use
data = load_dataset(DATASET)   # a copy you have: load_dataset(DATASET, path="...")

# %% [markdown]
# ## Step 1: the question and your prediction
#
# **Predict first:** write them down before you run anything (double-click this cell to
# edit); Step 4 prints the verdicts to compare them with:
#
# * **Question:** does SEC (weight 1) change the accuracy of `metric` and
#   `adapted_metric`, and does the effect depend on k?
# * **My prediction:** ...
# * **What result would change my mind?** ...
#
# ## Step 2: the design
#
# A good small study changes **one thing** between its variants and keeps the rest
# fixed; repeats every cell over several **seeds** (new tasks, new initialisations);
# and keeps the methods that tell the story, each of which the change can reach: SEC
# acts on embeddings, so the study runs the two embedding methods and not weight
# transfer (it trains no embedding, so its two variants would be the same runs). The
# grid runner varies method × k × n × seed; the **variants** are settings that differ
# between whole grids (any `MethodConfig` field, see `dk.methods.MethodConfig?`). The
# grid reads the same files as `data` above (`data_path=`), also when you load a copy.

# %%
STUDY = dict(
    dataset=DATASET,
    methods=["metric", "adapted_metric"],  # both read the regularizer (SEC)
    k_values=[1, 5, 10],
    n_values=[5],                           # digits has 5 target classes
    seeds=pick(3, 2), tasks=pick(2, 1),     # tasks per seed share the seed's source model
    compare_losses=[],                      # no extra losses (05 uses them)
    data_path=data_path(DATASET),           # the files `data` came from (None: data/)
)
VARIANTS = {"plain": {}, "SEC": {"regularizer": "sec", "regularizer_weight": 1.0}}
TRAINING = dict(source_epochs=pick(4, 1), target_epochs=pick(30, 10))  # short, for class
n_cells = len(VARIANTS) * len(STUDY["methods"]) * len(STUDY["k_values"]) * len(
    STUDY["n_values"]) * STUDY["seeds"] * STUDY["tasks"]
print(f"{n_cells} runs")

# %% [markdown]
# ## Step 3: run it
#
# Every run lands in the results store (under `data/`; a throw-away one in CI), keyed by
# its settings: rerun the cell and it reads the store instead of training. `executor`
# `"serial"` suits tiny `digits`; use `"process"` (both CPU cores) for `glyphs`. Each
# variant shows a bar and the mean accuracy so far per method and condition.

# %%
store = experiments.ResultsStore(
    Path(tempfile.mkdtemp()) / "results.sqlite" if fast_mode() else None)  # default: data/
frames = []
for variant, changes in VARIANTS.items():
    tracker = GridProgress(f"variant {variant!r}")
    display(tracker)
    frame = experiments.run_grid(**STUDY, preset="classroom", store=store, executor="serial",
                                 progress=tracker, **TRAINING, **changes)
    tracker.finish(frame)
    frames.append(frame.assign(variant=variant))
results = pd.concat(frames, ignore_index=True)
results[["variant", "method", "k", "n", "seed", "task", "accuracy"]].head()

# %% [markdown]
# ## Step 4: report
#
# First the table a paper would print: the mean accuracy with its **95% interval** over
# the replications (`dk.stats.summarise`; a replication is a (seed, task) pair). With two
# or three replications a t-interval can reach below 0 or above 1; an accuracy cannot,
# so such an interval is shown cut at the range, with a note that more seeds are needed
# (the verdicts below use the uncut interval).

# %%
summary = dk.stats.summarise(results, by=["method", "variant", "k"])
summary.pivot_table(index=["method", "variant"], columns="k", values="estimate",
                    aggfunc="first")

# %% [markdown]
# A difference of means is only news when its interval excludes zero. Because both
# variants see the **same** tasks, we pair them: the per-replication difference
# (SEC − plain), its mean and 95% interval, and the verdict `dk.stats`
# draws from it for the claim "SEC raises accuracy" (**holds**: SEC ahead; **fails**:
# SEC behind, or exactly equal on every task; **not resolved**: the interval contains
# 0, so this many replications cannot tell).

# %%
# verdict: SEC raises the accuracy of each method, at each k
effect = experiments.regularizer_effect(results, "SEC", "plain", by=("k",), column="variant")
effect[["method", "k", "SEC", "plain", "difference", "n", "verdict"]]

# %% [markdown]
# A comparison is only worth a verdict if the change can reach what is compared. Weight
# transfer ignores the regularizer (its registry entry says so), so "SEC − plain" would
# be 0 on every task by construction, and its verdict would read as a finding about SEC.
# `regularizer_effect` therefore compares only the methods that read the regularizer, and
# asking it for another one is an error that names the methods it accepts:

# %%
try:
    experiments.regularizer_effect(results, "SEC", "plain", methods=["weight_transfer"])
except ValueError as err:
    print(textwrap.fill(str(err), 88))         # the message, broken between words

# %% [markdown]
# The same runs in the grid browser: filter methods, switch the heatmap to error
# reduction. Each method appears once per variant (`method · variant`).

# %%
browsable = results.assign(method=results["method"] + " · " + results["variant"])
browser = dk.widgets.GridBrowser(browsable)
browser

# %% [markdown]
# ## Step 5: a metric you can trust — exercise
#
# Accuracy on k-shot tasks is the paper's score; retrieval work (ooDML, SEC) reports
# **Recall@1**: for every embedding, is its nearest *other* embedding (cosine
# similarity) of the same class? Write `my_recall_at_1(embeddings, labels)` → a float
# in [0, 1]. Leave each point out of its own neighbour list:
# $$\mathrm{R@1} = \frac{1}{N}\sum_{i=1}^{N} \mathbb{1}\big[y_{j^*(i)} = y_i\big],
#   \qquad j^*(i) = \arg\max_{j \ne i} \cos(f_i, f_j).$$

# %%
def my_recall_at_1(embeddings, labels) -> float:
    # your code here
    raise NotImplementedError


dk.exercises.check("recall_at_1", my_recall_at_1)

# %% [markdown]
# Then use it: embed the queries of one target task with a `metric` model and compare
# your number with the library's. (The source model trains live the first time; later
# runs load it from the model cache, and the panel says so instead of drawing.)

# %%
split = dk.data.domain_split(data, seed=0)
task = dk.data.kshot_task(split.target, n_way=5, k_shot=5, seed=0)
config = experiments.PRESETS["classroom"].config.replace(**TRAINING)
live = dk.viz.LiveDashboard(class_names=split.source.class_names, title="metric source, live")
display(live)
source = dk.methods.train_source("embedding", split.source, config, cache=True,
                                 callbacks=[live])
run = dk.methods.run("metric", task, source, config, seed=0)
emb = dk.metrics.embed(run.model, task.query_x)
library_r1 = dk.metrics.recall_at_k(emb, task.query_y, ks=(1,))[1]
try:
    print(f"Recall@1 of the queries: yours {my_recall_at_1(emb, task.query_y):.3f}, "
          f"library {library_r1:.3f}")
except NotImplementedError:
    print(f"Recall@1 of the queries (library): {library_r1:.3f}; write yours above")

# %% [markdown]
# ## Step 6: your conclusion
#
# Answer your question in two sentences, with the numbers and verdicts above, and say
# how sure you are (was it resolved at this many seeds?). Then ask what would make the
# answer stronger: more seeds or tasks, the `glyphs` dataset, larger k, longer
# training, another loss.
#
# ## What the three papers teach together
#
# | paper | what it reports | where your run checks it |
# |---|---|---|
# | *Adapted Deep Embeddings* (Scott, Ridgeway & Mozer, 2018) | start new classes from an **embedding**, not a classifier, and **adapt** it on the k examples; histogram loss the most robust | 05: the verdicts on its three conclusions (at k = 1 the hybrids *are* their parents, so only k > 1 can show adaptation) |
# | *Spherical Embedding Constraint* (Zhang, Li & Zhang, 2020) | under angular losses the **norm** sets the step size; keep norms equal with one cheap term | 06: gradient ∝ 1/‖f‖ (exact), and the verdict on the norm spread with and without SEC |
# | *ooDML* (Milbich, Roth et al., 2021) | "unseen classes" vary in **how far** they are; measure it (FD) and test along a ladder | 07: the verdicts on Recall@1 along the ladder and on what a few labels recover |
#
# Read together, they describe one pipeline for new classes with few labels:
#
# 1. learn an **embedding** on what you have, with a loss that compares examples;
# 2. keep its geometry healthy while it trains (**SEC**: equal norms, even learning);
# 3. **measure** how far the new classes are from the old ones before trusting
#    zero-shot numbers;
# 4. when you get k labelled examples of the new classes, **adapt** the embedding on
#    them; ooDML reports that those k examples are worth more the further the shift
#    (07 tests it on your run).
#
# ## What to remember
#
# * Write the question and the prediction before the run, and change **one** thing
#   between variants.
# * Pair the variants on the same replications (seed, task) and report the mean
#   difference with its 95% interval; "not resolved" asks for more replications.
# * Compare only what the change can reach: a method that ignores the changed setting
#   (weight transfer under SEC) gives the same runs twice, and a verdict on it says
#   nothing about the setting.
#
# **Papers.** Scott, Ridgeway & Mozer, NeurIPS 2018, arXiv 1805.08402. Zhang, Li & Zhang,
# NeurIPS 2020, arXiv 2011.02785. Milbich, Roth et al., NeurIPS 2021, arXiv 2107.09562.
# Musgrave, Belongie & Lim, *A Metric Learning Reality Check*, ECCV 2020 (fair comparisons).
#
# ### Check (the course runs these cells in CI)

# %%
snapshot = dk.viz.figure_fingerprint     # a string that changes when a figure's data does
assert browser.error is None, browser.error
before = snapshot(browser.heatmap), snapshot(browser.curves)
browser.methods.value = tuple(m for m in browser.methods.options if m.startswith("adapted"))
assert snapshot(browser.heatmap) != before[0] and snapshot(browser.curves) != before[1]
assert set(browser.filtered["method"]) == set(browser.methods.value)
browser.baseline.value = "adapted_metric · plain"           # SEC against its own plain run
browser.mode.value = "error reduction"
assert browser.error is None, browser.error
print("the browser follows its filters")

# %%
assert len(results) == n_cells and results["accuracy"].between(0, 1).all(), len(results)
k1 = results[results["k"] == 1].pivot_table(index=["variant", "seed", "task"],
                                            columns="method", values="accuracy")
assert (k1["adapted_metric"] == k1["metric"]).all()                 # k=1: the hybrid is its parent
assert set(effect["method"]) == set(STUDY["methods"])               # both read SEC
chance = 1 / max(STUDY["n_values"])
metric_acc = summary.set_index("method").loc["metric", "mean"]
assert (metric_acc > chance + 0.2).all(), summary                  # well above chance
assert 0 <= library_r1 <= 1 and run.accuracy > chance
print(f"{len(results)} runs; metric accuracy {metric_acc.min():.2f}-{metric_acc.max():.2f} "
      f"(chance {chance:.2f}); "
      f"query Recall@1 {library_r1:.3f}")
