package dev.panamoe.runtime.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.CpuBackend;
import dev.panamoe.runtime.comm.CommunicatorException;
import dev.panamoe.runtime.comm.InJvmWorld;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.GptMoeModel;
import dev.panamoe.runtime.parallel.ExpertMigration.MigrationException;
import dev.panamoe.runtime.train.AdamW;
import dev.panamoe.runtime.train.Trainer;
import dev.panamoe.runtime.train.TrainingConfig;
import dev.panamoe.strategy.placement.ExpertPlacement;
import dev.panamoe.strategy.plan.ParallelPlan;
import dev.panamoe.strategy.plan.RankLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;

/**
 * A migration that fails on one rank leaves every rank on the old placement with its experts'
 * values, gradients and moments untouched: a rank that stages a corrupt state makes every rank
 * refuse the change; a rank that dies instead of migrating stops the others before any commit.
 */
class MigrationFailureTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(20);
    private static final int RANKS = 4;

    /** After the migration attempt: the exception it threw, whether the placements and the whole state are the old ones. */
    private record Outcome(Throwable error, boolean samePlacement, boolean sameState) {
    }

    /** Experts 0 (rank 0) and 2 (rank 1) swap in every layer. */
    private static ExpertPlacement swap(ExpertPlacement p) {
        int[] table = p.slotTable();
        table[0] = 2;
        table[2] = 0;
        return ExpertPlacement.of(p.experts(), p.devices(), p.slotsPerDevice(), table);
    }

    @Test
    void aCorruptStagedStateIsRefusedOnEveryRank() {
        Map<Integer, Outcome> outcomes = new ConcurrentHashMap<>();
        run((trainer, rank) -> {
            // rank 1 holds expert 2, whose moment it corrupts: rank 0 receives it
            if (rank == 1) {
                AdamW.State s = trainer.optimizer().state("blocks.0.moe.experts.2.w1");
                s.m().setFloat(3, Float.NaN);
            }
            return null;
        }, outcomes);
        assertEquals(RANKS, outcomes.size());
        outcomes.forEach((rank, o) -> {
            assertTrue(o.error() instanceof MigrationException, "rank " + rank + ": " + o.error());
            assertTrue(o.error().getMessage().contains("refused on every rank: 1 rank(s) failed"), o.error().getMessage());
            assertTrue(o.samePlacement(), "rank " + rank + " kept the old placement");
            assertTrue(o.sameState(), "rank " + rank + " kept its state");
        });
        assertTrue(outcomes.get(0).error().getMessage().contains("non-finite value NaN"),
                outcomes.get(0).error().getMessage());
    }

    @Test
    void aRankThatDiesStopsTheOthersBeforeAnyCommit() {
        Map<Integer, Outcome> outcomes = new ConcurrentHashMap<>();
        CommunicatorException e = assertThrows(CommunicatorException.class, () -> run((trainer, rank) -> {
            if (rank == 3) {
                throw new IllegalStateException("rank 3 dies before migrating");
            }
            return null;
        }, outcomes));
        assertEquals(3, e.failedRank(), e.getMessage());
        assertEquals(RANKS - 1, outcomes.size(), "every surviving rank reports");
        outcomes.forEach((rank, o) -> {
            assertTrue(o.error() instanceof MigrationException, "rank " + rank + ": " + o.error());
            assertTrue(o.error().getMessage().contains("nothing was committed"), o.error().getMessage());
            assertTrue(o.samePlacement(), "rank " + rank + " kept the old placement");
            assertTrue(o.sameState(), "rank " + rank + " kept its state");
        });
    }

    /**
     * Trains one step on ep=4 in-JVM ranks, runs beforeMigration (rank given), snapshots the state,
     * then migrates to the swapped placement, which must throw, and records the outcome per rank.
     */
    private static void run(BiFunction<Trainer, Integer, Void> beforeMigration, Map<Integer, Outcome> outcomes) {
        GptMoeConfig modelConfig = ParallelTraining.model();
        TrainingConfig config = MigrationEquivalenceTest.config();
        RankLayout layout = new RankLayout(ParallelPlan.parse("ep=4", RANKS));
        InJvmWorld.run(RANKS, TIMEOUT, comm -> {
            try (ProcessGroups groups = new ProcessGroups(layout, comm);
                    GptMoeModel model = new GptMoeModel(CpuBackend.get(), modelConfig, config.seed(), groups);
                    Trainer trainer = new Trainer(model, ParallelTraining.corpus(), config)) {
                trainer.trainStep();
                beforeMigration.apply(trainer, comm.rank());
                List<ExpertPlacement> before = placements(model);
                Map<String, float[]> state = state(trainer);
                List<ExpertPlacement> next = before.stream().map(MigrationFailureTest::swap).toList();
                ExpertMigration migration = new ExpertMigration(CpuBackend.get(), groups, trainer.optimizer());
                RuntimeException error = assertThrows(RuntimeException.class, () -> migration.apply(model.moeLayers(), next));
                outcomes.put(comm.rank(), new Outcome(error, before.equals(placements(model)), same(state, state(trainer))));
                return null;
            }
        });
    }

    private static List<ExpertPlacement> placements(GptMoeModel model) {
        List<ExpertPlacement> all = new ArrayList<>();
        model.moeLayers().forEach(l -> all.add(MoELayers.placement(l)));
        return Collections.unmodifiableList(all);
    }

    /** Every parameter's value, gradient, m and v. */
    private static Map<String, float[]> state(Trainer trainer) {
        Map<String, float[]> all = new LinkedHashMap<>();
        for (AdamW.State s : trainer.optimizer().states()) {
            all.put(s.parameter().name() + ".value", s.parameter().value().toFloatArray());
            all.put(s.parameter().name() + ".grad", s.parameter().grad().toFloatArray());
            all.put(s.parameter().name() + ".m", s.m().toFloatArray());
            all.put(s.parameter().name() + ".v", s.v().toFloatArray());
        }
        return all;
    }

    private static boolean same(Map<String, float[]> a, Map<String, float[]> b) {
        if (!a.keySet().equals(b.keySet())) {
            return false;
        }
        for (String k : a.keySet()) {
            if (!Arrays.equals(a.get(k), b.get(k))) { // bitwise, NaN equal to NaN
                return false;
            }
        }
        return true;
    }
}
