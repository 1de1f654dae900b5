package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.ops.Parameter;
import dev.panamoe.runtime.comm.Communicator;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.golden.Golden;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel.ShardedParameter;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import dev.panamoe.strategy.policy.LoadTracker;
import dev.panamoe.strategy.policy.PlacementPolicy;
import dev.panamoe.strategy.policy.ReplicaSync;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Exact live migration: training with the experts permuted among the slots of every EP rank every
 * other step (seeded random permutations, moving values, gradients and AdamW moments; with replica
 * slots, random replications too) gives the same losses and final parameters — gathered per
 * logical expert — as the same plan without moves; both runs also equal their {@link Golden}
 * records bit for bit.
 */
class MigrationEquivalenceTest {
    static final double TOLERANCE = 1e-5;

    /**
     * Forces a seeded random placement of every layer's experts before every {@code every}-th
     * iteration: each expert in a random slot, and with replica slots each remaining slot a copy of
     * a random expert or free (even odds).
     */
    static final class ForcedPlacements implements PlacementPolicy {
        private final int layers;
        private final int experts;
        private final int devices;
        private final int replicaSlots;
        private final int every;
        private final long seed;

        ForcedPlacements(int layers, int experts, int devices, int replicaSlots, int every, long seed) {
            this.layers = layers;
            this.experts = experts;
            this.devices = devices;
            this.replicaSlots = replicaSlots;
            this.every = every;
            this.seed = seed;
        }

        @Override
        public String name() {
            return "forced:" + every;
        }

        @Override
        public List<ExpertPlacement> initial() {
            return Collections.nCopies(layers, ExpertPlacement.identity(experts, devices, replicaSlots));
        }

        @Override
        public Optional<List<ExpertPlacement>> decide(long iteration, LoadTracker tracker) {
            if (iteration % every != 0) {
                return Optional.empty();
            }
            SplittableRandom random = new SplittableRandom(seed * 1_000_003 + iteration);
            List<ExpertPlacement> next = new ArrayList<>();
            int slotsPerDevice = experts / devices + replicaSlots;
            for (int l = 0; l < layers; l++) {
                int[] table = new int[devices * slotsPerDevice];
                for (int p = 0; p < table.length; p++) {
                    table[p] = p < experts ? p : random.nextBoolean() ? random.nextInt(experts) : ExpertPlacement.FREE;
                }
                for (int i = table.length - 1; i > 0; i--) {
                    int j = random.nextInt(i + 1);
                    int t = table[i];
                    table[i] = table[j];
                    table[j] = t;
                }
                next.add(ExpertPlacement.of(experts, devices, slotsPerDevice, table));
            }
            return Optional.of(next);
        }

        @Override
        public ReplicaSync replicaSync() {
            return ReplicaSync.ALL_REDUCE;
        }
    }

    /** Losses per step, every value by name (experts by logical expert: "moe{layer}.experts.{e}.w1"), layer changes. */
    record Run(List<Double> losses, Map<String, float[]> values, int changes) implements Serializable {
    }

    static TrainingConfig config() {
        return TrainingConfig.builder().steps(6).batch(16).microBatches(2).seq(ParallelTraining.SEQ).lr(1e-3f)
                .minLr(1e-4f).eps(1e-4f).warmup(1).clipNorm(0.5f).evalEvery(0).evalBatches(2).seed(5).build();
    }

    /** Trains plan on world in-JVM ranks, under policy when not null; merges the ranks' values. */
    static Run train(String plan, int world, GptMoeConfig modelConfig, PlacementPolicy policyOrNull) {
        RankLayout layout = new RankLayout(ParallelPlan.parse(plan, world));
        return merge(InJvmWorld.run(world, ParallelTraining.TIMEOUT,
                comm -> trainRank(comm, layout, modelConfig, policyOrNull)));
    }

    /** One rank's part of the run: its losses, values (by logical expert) and the placement changes. */
    static Run trainRank(Communicator comm, RankLayout layout, GptMoeConfig modelConfig, PlacementPolicy policyOrNull) {
        TrainingConfig config = config();
        try (ProcessGroups groups = new ProcessGroups(layout, comm);
                GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig, config.seed(), groups,
                        policyOrNull == null ? null : policyOrNull.initial());
                Trainer trainer = new Trainer(model, ParallelTraining.corpus(), config)) {
            PlacementController controller = policyOrNull == null ? null : trainer.usePlacement(policyOrNull);
            List<Double> losses = trainer.run(m -> { }).stream().map(m -> m.loss()).toList();
            return new Run(losses, values(model), controller == null ? 0 : controller.changes());
        }
    }

    /** The ranks' runs as one: rank 0's losses and changes, every rank's values. */
    static Run merge(List<Run> runs) {
        Map<String, float[]> merged = new TreeMap<>();
        runs.forEach(r -> merged.putAll(r.values()));
        return new Run(runs.get(0).losses(), merged, runs.get(0).changes());
    }

    /** Dense parameters by name; expert shards by the logical expert their slot holds now. */
    static Map<String, float[]> values(GptMoeModel model) {
        Map<String, float[]> values = new TreeMap<>();
        for (ShardedParameter p : model.shardedParameters()) {
            if (!p.name().contains(".moe.experts.")) {
                values.put(p.name(), p.parameter().value().toFloatArray());
            }
        }
        for (int l = 0; l < model.moeLayerCount(); l++) {
            for (Parameter p : model.moeLayers().get(l).expertParameters()) {
                values.put("moe" + (model.firstMoeLayer() + l) + "." + p.name(), p.value().toFloatArray());
            }
        }
        return values;
    }

    @ParameterizedTest(name = "{0}, {1} replica slots per device")
    @CsvSource({"ep=4,0", "'dp=2,ep=2',0", "'pp=2,ep=2',0", "ep=4,1", "'dp=2,ep=2',2"})
    void placementChangesEveryOtherStepChangeNothing(String plan, int replicaSlots) {
        GptMoeConfig model = ParallelTraining.model();
        long start = System.nanoTime();
        int ep = ParallelPlan.parse(plan, 4).ep();
        Run still = train(plan, 4, model, null);
        Run moved = train(plan, 4, model,
                new ForcedPlacements(model.moeLayerCount(), model.experts(), ep, replicaSlots, 2, 17));
        assertEquals(3 * model.moeLayerCount(), moved.changes(), "layer placement changes (iterations 2, 4, 6)");
        double worst = compare(still, moved);
        golden("migration-" + plan + "-replicas" + replicaSlots + "-still", still);
        golden("migration-" + plan + "-replicas" + replicaSlots + "-moved", moved);
        System.out.printf(Locale.ROOT, "migration %-10s replicas %d: max relative difference %.2e in %.1f s%n", plan,
                replicaSlots, worst, (System.nanoTime() - start) / 1e9);
    }

    /** Checks a run's losses and values against its {@link Golden} record, bit for bit. */
    static void golden(String name, Run run) {
        Golden golden = Golden.named(name);
        for (int i = 0; i < run.losses().size(); i++) {
            golden.scalar("loss " + (i + 1), run.losses().get(i));
        }
        golden.values("value", run.values()).scalar("changes", run.changes()).check();
    }

    /** Asserts every loss and value of actual within TOLERANCE of expected (per tensor, relative to its max); returns the worst. */
    static double compare(Run expected, Run actual) {
        assertEquals(expected.losses().size(), actual.losses().size(), "steps");
        assertEquals(expected.values().keySet(), actual.values().keySet(), "parameter names");
        double worst = 0;
        for (int i = 0; i < expected.losses().size(); i++) {
            double a = expected.losses().get(i);
            double b = actual.losses().get(i);
            double rel = Math.abs(a - b) / Math.abs(a);
            assertTrue(rel <= TOLERANCE, "loss of step " + (i + 1) + ": " + a + " vs " + b);
            worst = Math.max(worst, rel);
        }
        for (Map.Entry<String, float[]> e : expected.values().entrySet()) {
            worst = Math.max(worst,
                    TensorAsserts.assertClose(e.getKey(), e.getValue(), actual.values().get(e.getKey()), TOLERANCE));
        }
        return worst;
    }
}
