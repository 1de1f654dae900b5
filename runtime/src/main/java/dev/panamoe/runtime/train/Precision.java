package dev.panamoe.runtime.train;

import dev.panamoe.bindings.CpuIsa;
import dev.panamoe.bindings.CudaException;
import dev.panamoe.bindings.CudaRuntime;
import dev.panamoe.bindings.NativeCallException;
import dev.panamoe.bindings.NativeLibraryUnavailableException;
import dev.panamoe.bindings.panamoe_h;
import dev.panamoe.ops.DType;
import dev.panamoe.ops.Device;
import java.util.Locale;

/**
 * The precision a run trains in: {@link #FP32}, {@link #BF16} (mixed precision: f32 master
 * weights and moments, bf16 working copies and activations), or {@link #AUTO}, which is bf16
 * where the device does bf16 arithmetic natively — a CPU whose kernels run at the avx512_bf16
 * level, a CUDA device with tensor cores for bf16 (compute capability 8.0 or higher) — and fp32
 * elsewhere, where bf16 would be emulated and slower than fp32.
 */
public enum Precision {
    FP32,
    BF16,
    AUTO;

    /** What a run trains in (FP32 or BF16, never AUTO) and why, for the run's header and doctor. */
    public record Resolved(Precision precision, String reason) {
        public Resolved {
            if (precision == AUTO) {
                throw new IllegalArgumentException("precision: a resolved precision is fp32 or bf16, got auto");
            }
        }

        /** The dtype of the activations and working weights. */
        public DType dtype() {
            return precision == BF16 ? DType.BF16 : DType.F32;
        }

        @Override
        public String toString() {
            return precision.label() + " (" + reason + ")";
        }
    }

    /** "fp32", "bf16" or "auto", as the command line spells it. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The label: what a checkpoint records and {@code --resume} reads back as the option's value. */
    @Override
    public String toString() {
        return label();
    }

    /** The precision named fp32, bf16 or auto (any case); IllegalArgumentException naming {@code what} otherwise. */
    public static Precision parse(String what, String name) {
        for (Precision p : values()) {
            if (p.label().equalsIgnoreCase(name == null ? "" : name.strip())) {
                return p;
            }
        }
        throw new IllegalArgumentException(what + ": expected fp32, bf16 or auto, got \"" + name + "\"");
    }

    /** This precision on device, querying the CPU library or CUDA runtime for AUTO. */
    public Resolved resolve(Device device) {
        if (this != AUTO) {
            return requested();
        }
        if (device.isCpu()) {
            try {
                return resolveCpu(CpuIsa.query(panamoe_h.cpu()));
            } catch (NativeLibraryUnavailableException | NativeCallException | IllegalArgumentException e) {
                return new Resolved(FP32, "the CPU library's ISA cannot be read: " + e.getMessage());
            }
        }
        try {
            return resolveCuda(CudaRuntime.properties(device.index()));
        } catch (NativeLibraryUnavailableException | CudaException e) {
            return new Resolved(FP32, "cuda:" + device.index() + " cannot be queried: " + e.getMessage());
        }
    }

    /** This precision on a CPU whose kernels run at isa's level. */
    public Resolved resolveCpu(CpuIsa isa) {
        if (this != AUTO) {
            return requested();
        }
        if (isa.level() >= panamoe_h.PMOE_ISA_AVX512_BF16()) {
            return new Resolved(BF16, "auto: the CPU kernels use avx512_bf16");
        }
        boolean lowered = isa.has(panamoe_h.PMOE_CPU_AVX512_BF16());
        return new Resolved(FP32, "auto: the CPU kernels use " + isa.levelName() + (lowered
                ? " (lowered from avx512_bf16 by PMOE_CPU_ISA / -D" + CpuIsa.PROPERTY + ")"
                : ", the CPU has no AVX512_BF16") + ", so bf16 would be emulated");
    }

    /** This precision on a CUDA device. */
    public Resolved resolveCuda(CudaRuntime.DeviceProperties device) {
        if (this != AUTO) {
            return requested();
        }
        String cc = "compute capability " + device.computeMajor() + "." + device.computeMinor();
        return device.computeMajor() >= 8
                ? new Resolved(BF16, "auto: cuda:" + device.index() + " has bf16 tensor cores (" + cc + ")")
                : new Resolved(FP32, "auto: cuda:" + device.index() + " has no bf16 tensor cores (" + cc
                        + ", they need 8.0)");
    }

    private Resolved requested() {
        return new Resolved(this, "requested");
    }
}
