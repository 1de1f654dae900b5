package dev.panamoe.strategy.search;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonParseException;
import dev.panamoe.strategy.cost.Skeleton;
import dev.panamoe.strategy.io.IoErrors;
import dev.panamoe.strategy.plan.ParallelPlan;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The offline phase's result: the best plan skeletons for a model on a cluster, fastest first
 * (expert placement is the only thing left to vary within each), and for every other plan
 * considered the reason it lost. Serialised as JSON for {@code train --plan-pool FILE}.
 *
 * @param model       the model's preset name
 * @param cluster     the cluster, one line
 * @param calibration which rates were measured and which are preset defaults
 * @param globalBatch sequences per step
 * @param loads       the load samples each plan was scored under
 * @param considered  skeletons considered (pool + rejected, counting each micro-batch and capacity)
 * @param pool        the best skeletons, fastest first
 * @param rejected    every other plan or skeleton, with its reason
 */
public record PlanPool(String model, String cluster, List<String> calibration, int globalBatch, String loads,
        int considered, List<Entry> pool, List<Rejection> rejected) {

    /** Why a plan lost. */
    public enum Reason {
        /** the plan's degrees do not divide the model (layers, experts, heads, widths) */
        DIVISIBILITY,
        /** tensor parallelism wider than a node */
        TOPOLOGY,
        /** the data-parallel degree does not divide the global batch */
        BATCH,
        /** parameters, optimizer state and activations do not fit a device */
        MEMORY,
        /** the same plan with another micro-batch is faster */
        MICRO_BATCH,
        /** feasible but slower than the pool's last entry */
        SLOWER
    }

    /**
     * One pooled skeleton. capacity is "dropless" or the factor; stepSeconds the mean over the
     * load samples and worstStepSeconds their maximum; terms the mean of each time term;
     * memoryBytes the fullest device's (memoryTerms: parameters, gradients, optimizer,
     * activations).
     */
    public record Entry(String plan, int pp, int tp, int ep, int edp, int microBatch, int microBatches,
            String capacity, double stepSeconds, double worstStepSeconds, Map<String, Double> terms,
            double memoryBytes, Map<String, Double> memoryTerms, double maxOverMeanLoad, double droppedFraction) {

        public ParallelPlan parallelPlan() {
            return new ParallelPlan(pp, tp, ep, edp);
        }

        public Skeleton skeleton() {
            return new Skeleton(parallelPlan(), microBatch, microBatches, Skeleton.parseCapacity(capacity));
        }
    }

    /**
     * A plan that lost: skeleton is the plan alone for DIVISIBILITY, TOPOLOGY and BATCH, else the
     * full skeleton; slowerPercent how much slower than the best pool entry (null when not
     * scored); detail the constraint broken or the faster alternative.
     */
    public record Rejection(String skeleton, Reason reason, String detail, Double slowerPercent) {
    }

    public String toJson() {
        return gson().toJson(this);
    }

    public void write(Path file) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            Files.writeString(file, toJson());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the plan pool to " + file + ": " + IoErrors.reason(e), e);
        }
    }

    public static PlanPool fromJson(String json) {
        try {
            PlanPool p = gson().fromJson(json, PlanPool.class);
            if (p == null || p.pool() == null) {
                throw new IllegalArgumentException("plan pool: JSON has no \"pool\" array");
            }
            return p;
        } catch (JsonParseException e) {
            throw new IllegalArgumentException("plan pool: not valid JSON: " + e.getMessage(), e);
        }
    }

    public static PlanPool read(Path file) {
        try {
            return fromJson(Files.readString(file));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the plan pool " + file + ": " + IoErrors.reason(e), e);
        }
    }

    private static Gson gson() {
        return new GsonBuilder().setPrettyPrinting().create();
    }
}
