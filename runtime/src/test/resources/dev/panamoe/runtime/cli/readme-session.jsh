// An MoE layer (4 experts, top-2) forward and backward on the CPU
var cpu = CpuBackend.get();
var layer = new MoELayer(cpu, MoELayer.Config.builder().hidden(32).ffn(64).experts(4).topK(2).build(), 42);
var scope = TensorScope.confined(cpu);
var x = scope.allocate("x", DType.F32, 16, 32);
var rng = new Random(1);
for (int i = 0; i < x.numel(); i++) x.setFloat(i, (float) rng.nextGaussian());
var y = layer.forward(x);
var gradX = layer.backward(y);    // the gradient of |y|^2 / 2; the weights' gradients accumulate
Arrays.toString(layer.workspace().routedCounts())
// The tiny GPT-MoE, trained for 10 steps on the synthetic corpus
var corpus = new SyntheticCorpus(SyntheticCorpus.Config.tinyDefaults());
var model = new GptMoeModel(cpu, GptMoeConfig.preset("tiny"), 1);
var trainer = new Trainer(model, corpus, TrainingConfig.builder().steps(10).batch(8).build());
for (int s = 1; s <= 10; s++) { var m = trainer.trainStep(); if (s % 5 == 0) System.out.printf("step %d  loss %.3f%n", m.step(), m.loss()); }
Arrays.deepToString(model.expertCounts())    // token slots routed to each expert of each MoE layer in the last forward
System.out.println("panamoe-shell-ok")
/exit
