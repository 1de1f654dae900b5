package dev.panamoe.ops;

import dev.panamoe.bindings.panamoe_h;
import java.lang.foreign.MemorySegment;

/**
 * The CPU kernels over "device" memory of a {@link FakeDeviceMemory}: tensors live behind
 * zero-length segments and a caching allocator exactly as on a GPU, and the host sees them only
 * through copies, so the device code paths of {@link NativeBackend}, {@link Tensor} and
 * {@link TensorTable} run without a GPU (the fake's memory is host memory the CPU kernels can use).
 */
final class FakeDeviceBackend extends NativeBackend {
    static final long STREAM = 0x5;

    final FakeDeviceMemory raw;
    final CachingAllocator allocator;

    FakeDeviceBackend(long capacity) {
        super(panamoe_h.cpu());
        this.raw = new FakeDeviceMemory(Device.cuda(0), capacity);
        this.allocator = new CachingAllocator(raw);
    }

    @Override
    public String name() {
        return "fake-cuda";
    }

    @Override
    public Device device() {
        return raw.device();
    }

    @Override
    public TensorMemory openMemory(boolean shared) {
        return new DeviceMemory(allocator, raw, STREAM);
    }

    @Override
    MemorySegment stream() {
        return MemorySegment.NULL; // the CPU kernels run synchronously
    }
}
