package dev.panamoe.runtime.parallel;

import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.train.AdamW;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.cost.Calibration;
import dev.panamoe.strategy.cost.ClusterSpec;
import dev.panamoe.strategy.cost.CostModel;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.policy.LoadTracker;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.policy.PlacementPolicy;
import dev.panamoe.strategy.policy.Policies;
import dev.panamoe.strategy.policy.PolicyContext;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The online phase in the trainer: after each optimizer step, records the step's per-layer,
 * per-expert routed counts (summed over the world, so every rank holds the same tracker), asks
 * the policy whether to change placement before the next step (each policy keeps its own period)
 * and applies what it decides through {@link ExpertMigration}. Every rank runs the same
 * deterministic policy on the same counts, so every rank decides the same at the same step.
 */
public final class PlacementController {
    /** Iterations of counts the tracker keeps: enough for greedy:100 to average its whole period. */
    public static final int WINDOW = 100;

    private final PlacementPolicy policy;
    private final GptMoeModel model;
    private final ExpertMigration migration;
    private final ExpertReplicas replicas;
    private final LoadTracker tracker;
    /** Every step's world counts [moeLayer][expert], from step 1: what a resumed run replays the policy on. */
    private final List<int[][]> loads = new ArrayList<>();
    private List<ExpertPlacement> current;
    private int changes;
    private int movedSlots;

    public PlacementController(PlacementPolicy policy, GptMoeModel model, ProcessGroups groups, AdamW optimizer) {
        this.policy = policy;
        this.model = model;
        this.migration = new ExpertMigration(model.backend(), groups, optimizer);
        this.replicas = new ExpertReplicas(model.backend(), groups.expert());
        int layers = model.config().moeLayerCount();
        this.tracker = new LoadTracker(layers, model.config().experts(), WINDOW);
        List<ExpertPlacement> initial = policy.initial();
        if (initial.size() != layers) {
            throw new IllegalArgumentException("policy: " + policy.name() + " places " + initial.size()
                    + " MoE layers, the model has " + layers);
        }
        for (int l = 0; l < model.moeLayerCount(); l++) {
            model.moeLayers().get(l).setPlacement(MoELayers.slots(initial.get(model.firstMoeLayer() + l))); // build the model with them
        }
        this.current = initial;
    }

    /**
     * The policy of a {@code --placement} string (static, greedy[:X], replica[:R], smart[:R]) for a
     * run of model under plan: its cost model is that of the in-JVM "cpu" cluster of plan.world()
     * ranks with the default (uncalibrated) rates, the skeleton the run's micro-batches.
     */
    public static PlacementPolicy policy(String spec, GptMoeConfig model, ParallelPlan plan, TrainingConfig config) {
        ClusterSpec cluster = Calibration.defaults().apply(ClusterSpec.preset("cpu", plan.world(), plan.world()));
        Skeleton skeleton = new Skeleton(plan, config.microBatchSize() / plan.dataParallel(), config.microBatches(),
                model.capacityFactor());
        return Policies.create(spec, new PolicyContext(new CostModel(model.shape(), cluster), skeleton));
    }

    /** What {@link #policy} priced placements with, one line. */
    public static String costModelDescription(ParallelPlan plan) {
        ClusterSpec cluster = ClusterSpec.preset("cpu", plan.world(), plan.world());
        return "cost model: cluster " + cluster.name() + " of " + plan.world() + " ranks, default rates (uncalibrated)";
    }

    public PlacementPolicy policy() {
        return policy;
    }

    /** Layer placement changes applied so far (a decision that moves experts of n layers counts n). */
    public int changes() {
        return changes;
    }

    /** Physical slots that received another expert so far, over every layer. */
    public int movedSlots() {
        return movedSlots;
    }

    /** What one step changed: MoE layers whose placement changed, and physical slots that got another expert. */
    public record Change(int layers, int slots) {
        public static final Change NONE = new Change(0, 0);
    }

    /**
     * Before the gradient reduction of a step: sums each replica's gradient into its expert's
     * first slot and zeroes it (only the first slot has optimizer state that counts). Collective
     * over the EXPERT group.
     */
    public void reduceReplicaGradients() {
        replicas.reduceGradients(model.moeLayers());
    }

    /**
     * After optimizer step {@code step} (from 1) with its routed counts [moeLayer][expert] (the
     * world's): copies the updated weights into the replicas, records the counts and applies the
     * policy's decision for the next iteration. Returns what it changed. Collective over the world.
     */
    public Change afterStep(int step, int[][] counts) {
        replicas.copyWeights(model.moeLayers());
        Optional<List<ExpertPlacement>> decision = decide(step, counts);
        decision.ifPresent(next -> migration.apply(model.moeLayers(), stageLayers(next)));
        return decision.map(this::commit).orElse(Change.NONE);
    }

    /** The current placement of every MoE layer of the model (not only this stage's). */
    public List<ExpertPlacement> placements() {
        return current;
    }

    /** The counts of every step so far, [step - 1][moeLayer][expert]. */
    public List<int[][]> loads() {
        return List.copyOf(loads);
    }

    /**
     * On resume, before the checkpoint's tensors are restored: replays the policy on the counts of
     * the steps already run ({@link #loads()} of the saved run), so that the tracker, the policy's
     * own state and the placements are those of the uninterrupted run at that step, and gives the
     * model's layers those placements without moving anything — the checkpoint's tensors, saved
     * under the same placements, fill every slot next. Collective over nothing; every rank replays
     * the same counts. The counts are those of the steps after {@code firstStep - 1}: a run resumed
     * under another plan from a checkpoint without a policy started counting there.
     */
    public void replay(int firstStep, List<int[][]> steps) {
        if (!loads.isEmpty()) {
            throw new IllegalStateException("replay: the controller has already run " + loads.size() + " steps");
        }
        for (int s = 0; s < steps.size(); s++) {
            decide(firstStep + s, steps.get(s)).ifPresent(this::commit);
        }
        List<ExpertPlacement> stage = stageLayers(current);
        for (int l = 0; l < stage.size(); l++) {
            model.moeLayers().get(l).applyPlacement(MoELayers.slots(stage.get(l)), (slot, expert, w1, w2) -> { });
        }
    }

    /** Records a step's counts and asks the policy about the next iteration. */
    private Optional<List<ExpertPlacement>> decide(int step, int[][] counts) {
        loads.add(Arrays.stream(counts).map(int[]::clone).toArray(int[][]::new));
        for (int l = 0; l < counts.length; l++) {
            tracker.record(l, Arrays.stream(counts[l]).asLongStream().toArray());
        }
        return policy.decide(step, tracker);
    }

    /** Makes next the current placement; returns what it changed. */
    private Change commit(List<ExpertPlacement> next) {
        int layers = 0;
        int slots = 0;
        for (int l = 0; l < next.size(); l++) {
            int moved = next.get(l).changedSlots(current.get(l));
            layers += moved > 0 ? 1 : 0;
            slots += moved;
        }
        current = List.copyOf(next);
        changes += layers;
        movedSlots += slots;
        return new Change(layers, slots);
    }

    /** This stage's layers of a whole-model placement list. */
    private List<ExpertPlacement> stageLayers(List<ExpertPlacement> all) {
        int first = model.firstMoeLayer();
        return all.subList(first, first + model.moeLayerCount());
    }
}
