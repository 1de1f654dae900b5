import dev.panamoe.ops.*;
import dev.panamoe.runtime.data.SyntheticCorpus;
import dev.panamoe.runtime.model.*;
import dev.panamoe.runtime.train.*;
import java.util.*;
public class OptProbe {
    public static void main(String[] a) {
        String precision = a[0];
        GptMoeConfig config = GptMoeConfig.preset("small");
        SyntheticCorpus.Config data = SyntheticCorpus.Config.tinyDefaults().withSeqLen(config.maxSeq());
        TrainingConfig training = TrainingConfig.builder().steps(Integer.MAX_VALUE).batch(8).seq(config.maxSeq()).evalEvery(0)
                .precision(Precision.parse("precision", precision)).build();
        CpuBackend backend = CpuBackend.get();
        try (GptMoeModel model = new GptMoeModel(backend, config, 1, training.precision().resolve(Device.CPU).dtype());
             Trainer trainer = new Trainer(model, new SyntheticCorpus(data), training)) {
            for (int i = 0; i < 5; i++) trainer.trainStep();
            List<Tensor> grads = model.shardedParameters().stream().map(p -> p.parameter().grad()).toList();
            Map<Tensor, Tensor> copies = model.workingCopies();
            for (int rep = 0; rep < 5; rep++) {
                double[] tn = new double[21], ta = new double[21];
                for (int i = 0; i < 21; i++) {
                    if (a.length > 1) trainer.trainStep();
                    long t0 = System.nanoTime(); backend.sumSquares(grads); long t1 = System.nanoTime();
                    trainer.optimizer().step(1e-4f, 10, 0.5f, copies); long t2 = System.nanoTime();
                    tn[i] = (t1 - t0) / 1e6; ta[i] = (t2 - t1) / 1e6;
                }
                Arrays.sort(tn); Arrays.sort(ta);
                System.out.printf((a.length > 1 ? "after a step, " : "in a loop, ") + "%s: %d tensors, %d copies: grad norm %.2f ms, adamw %.2f ms (medians, warm)%n", precision, grads.size(), copies.size(), tn[10], ta[10]);
            }
        }
    }
}
