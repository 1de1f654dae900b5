// Kernel timing driver of run.sh: LayerNorm and attention through CpuBackend, five rounds, the last one printed.
// Usage: java ... Mb bf16|f32 [T]
import dev.panamoe.ops.*;
import java.util.*;
public class Mb {
    static void fill(Tensor t, Random r) { float[] v = new float[(int) t.numel()]; for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian() * 0.5f; t.copyFrom(v); }
    public static void main(String[] a) {
        Backend cpu = CpuBackend.get();
        DType dt = a.length > 0 && a[0].equals("f32") ? DType.F32 : DType.BF16;
        int B = 8, T = a.length > 1 ? Integer.parseInt(a[1]) : 256, C = 256, H = 8, N = B * T;
        Random r = new Random(1);
        try (TensorScope s = TensorScope.confined(cpu)) {
            Tensor x = s.allocate("x", dt, N, C), w = s.allocate("w", dt, C), b = s.allocate("b", dt, C), out = s.allocate("o", dt, N, C);
            Tensor mean = s.allocate("m", DType.F32, N), rstd = s.allocate("r", DType.F32, N), dx = s.allocate("dx", dt, N, C), dw = s.allocate("dw", DType.F32, C), db = s.allocate("db", DType.F32, C);
            Tensor qkv = s.allocate("qkv", dt, N, 3 * C), ao = s.allocate("ao", dt, N, C), dqkv = s.allocate("dqkv", dt, N, 3 * C);
            Tensor[] atts = new Tensor[6]; for (int l = 0; l < 6; l++) atts[l] = s.allocate("att" + l, DType.F32, B, H, T, T);
            fill(x, r); fill(w, r); fill(b, r); fill(out, r); fill(qkv, r);
            for (int round = 0; round < 5; round++) {
                long t0 = System.nanoTime();
                for (int i = 0; i < 50; i++) cpu.layerNormForward(x, w, b, 1e-5f, out, mean, rstd);
                long t1 = System.nanoTime();
                for (int i = 0; i < 50; i++) cpu.layerNormBackward(x, w, mean, rstd, out, dx, dw, db);
                long t2 = System.nanoTime();
                for (int i = 0; i < 12; i++) cpu.attentionForward(H, qkv, atts[i % 6], ao);
                long t3 = System.nanoTime();
                for (int i = 0; i < 12; i++) cpu.attentionBackward(H, qkv, atts[i % 6], ao, dqkv);
                long t4 = System.nanoTime();
                System.out.printf("%s ln fwd %.3f ms  ln bwd %.3f ms  att fwd %.3f ms  att bwd %.3f ms%n", dt, (t1 - t0) / 50e6, (t2 - t1) / 50e6, (t3 - t2) / 12e6, (t4 - t3) / 12e6);
            }
        }
    }
}
