package dev.panamoe.runtime.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Activation;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

class GptMoeConfigTest {

    @Test
    void invalidFieldsAreNamedWithTheirValue() {
        List<Object[]> cases = List.<Object[]>of(
                bad("vocab", "0", b -> b.vocab(0)),
                bad("maxSeq", "-3", b -> b.maxSeq(-3)),
                bad("layers", "0", b -> b.layers(0)),
                bad("hidden", "10", b -> b.hidden(10).heads(4)),
                bad("heads", "0", b -> b.heads(0)),
                bad("moeEvery", "3", b -> b.layers(2).moeEvery(3)),
                bad("moeEvery", "0", b -> b.moeEvery(0)),
                bad("experts", "0", b -> b.experts(0).topK(1)),
                bad("topK", "5", b -> b.topK(5)),
                bad("expertFfn", "-1", b -> b.expertFfn(-1)),
                bad("denseFfn", "-2", b -> b.denseFfn(-2)),
                bad("expertActivation", "null", b -> b.expertActivation(null)),
                bad("scoreFunction", "null", b -> b.scoreFunction(null)),
                bad("capacityFactor", "0.0", b -> b.capacityFactor(0)),
                bad("dropPolicy", "null", b -> b.dropPolicy(null)),
                bad("auxLossCoeff", "-0.5", b -> b.auxLossCoeff(-0.5f)),
                bad("zLossCoeff", "NaN", b -> b.zLossCoeff(Float.NaN)),
                bad("norm", "null", b -> b.norm(null)),
                bad("vocab", "1000000", b -> b.vocab(1_000_000).hidden(4096).heads(8)));
        for (Object[] c : cases) {
            String field = (String) c[0];
            String value = (String) c[1];
            @SuppressWarnings("unchecked")
            UnaryOperator<GptMoeConfig.Builder> change = (UnaryOperator<GptMoeConfig.Builder>) c[2];
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> change.apply(ModelTestData.small()).build(), field);
            assertTrue(e.getMessage().startsWith(field + ":"), () -> field + ": message " + e.getMessage());
            assertTrue(value.equals("null") ? e.getMessage().contains("null") : e.getMessage().contains(value),
                    () -> field + ": message " + e.getMessage() + " lacks " + value);
        }
    }

    private static Object[] bad(String field, String value, UnaryOperator<GptMoeConfig.Builder> change) {
        return new Object[] {field, value, change};
    }

    @Test
    void presetsAreKnownByName() {
        assertEquals(List.of("tiny", "small", "gpt-moe-l16-h2560", "gpt-moe-l8-h2048", "gpt-moe-l16-h1536"),
                GptMoeConfig.presetNames());
        for (String name : GptMoeConfig.presetNames()) {
            GptMoeConfig c = GptMoeConfig.preset(name);
            assertEquals(2, c.topK(), name);
            assertEquals(4 * c.hidden() / c.topK(), c.expertFfn(), name + ": SmartMoE's expert ffn");
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GptMoeConfig.preset("huge"));
        assertTrue(e.getMessage().contains("'huge'") && e.getMessage().contains("gpt-moe-l8-h2048"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> GptMoeConfig.preset(null));
    }

    @Test
    void smartMoeShapes() {
        int[][] shapes = {{16, 2560, 16}, {8, 2048, 16}, {16, 1536, 32}};
        for (int[] s : shapes) {
            GptMoeConfig c = GptMoeConfig.preset("gpt-moe-l" + s[0] + "-h" + s[1]);
            assertEquals(s[0], c.layers());
            assertEquals(s[1], c.hidden());
            assertEquals(s[2], c.experts());
            assertEquals(16, c.heads());
            assertEquals(1024, c.maxSeq());
            assertEquals(50257, c.vocab());
            assertEquals(s[0], c.moeLayerCount());
        }
    }

    /**
     * Written out per preset: embeddings V*C + S*C; per block two LayerNorms (2C each),
     * attention 4C^2 + 4C (qkv and proj with biases), and either an MoE FFN (gate C*E, E experts
     * of 2*C*F) or a dense one (2*C*F + F + C); the final LayerNorm 2C; tied head.
     */
    @Test
    void parameterCountMatchesHandFormula() {
        // gpt-moe-l16-h2560: C = 2560, F = 5120, E = 16, L = 16, all blocks MoE.
        long c = 2560, f = 5120, e = 16;
        long block = 4 * c + 4 * c * c + 4 * c + c * e + e * 2 * c * f;
        assertEquals(50257 * c + 1024 * c + 16 * block + 2 * c, GptMoeConfig.preset("gpt-moe-l16-h2560").parameterCount());
        assertEquals(7_262_584_320L, GptMoeConfig.preset("gpt-moe-l16-h2560").parameterCount(), "about 7.3B");

        // gpt-moe-l8-h2048: C = 2048, F = 4096, E = 16, L = 8.
        c = 2048;
        f = 4096;
        block = 4 * c + 4 * c * c + 4 * c + c * e + e * 2 * c * f;
        assertEquals(50257 * c + 1024 * c + 8 * block + 2 * c, GptMoeConfig.preset("gpt-moe-l8-h2048").parameterCount());

        // gpt-moe-l16-h1536: C = 1536, F = 3072, E = 32, L = 16.
        c = 1536;
        f = 3072;
        e = 32;
        block = 4 * c + 4 * c * c + 4 * c + c * e + e * 2 * c * f;
        assertEquals(50257 * c + 1024 * c + 16 * block + 2 * c, GptMoeConfig.preset("gpt-moe-l16-h1536").parameterCount());

        // small: C = 256, S = V = 256, 6 blocks, blocks 1, 3, 5 MoE (E = 8, F = 512), the others dense (F = 1024).
        c = 256;
        long moe = 4 * c + 4 * c * c + 4 * c + c * 8 + 8 * 2 * c * 512;
        long dense = 4 * c + 4 * c * c + 4 * c + 2 * c * 1024 + 1024 + c;
        assertEquals(256 * c + 256 * c + 3 * moe + 3 * dense + 2 * c, GptMoeConfig.preset("small").parameterCount());
    }

    @Test
    void activeParametersLeaveOutTheUnroutedExperts() {
        GptMoeConfig c = GptMoeConfig.preset("gpt-moe-l16-h2560");
        long expert = 2L * 2560 * 5120;
        assertEquals(expert, c.expertParameterCount());
        assertEquals(c.parameterCount() - 16L * 14 * expert, c.activeParameterCount());
        GptMoeConfig swiglu = c.toBuilder().expertActivation(Activation.SWIGLU).build();
        assertEquals(3L * 2560 * 5120, swiglu.expertParameterCount(), "SwiGLU's W1 is [hidden, 2 * ffn]");
    }

    @Test
    void moeBlocksAreEveryMoeEveryTh() {
        GptMoeConfig c = GptMoeConfig.preset("small");
        assertEquals(3, c.moeLayerCount());
        for (int l = 0; l < 6; l++) {
            assertEquals(l % 2 == 1, c.isMoeBlock(l), "block " + l);
        }
        GptMoeConfig third = c.toBuilder().moeEvery(3).build();
        assertEquals(2, third.moeLayerCount());
        assertTrue(third.isMoeBlock(2) && third.isMoeBlock(5) && !third.isMoeBlock(3));
    }

    @Test
    void toBuilderRescalesDerivedFfnsAndKeepsExplicitOnes() {
        GptMoeConfig small = GptMoeConfig.preset("small");
        assertEquals(small, small.toBuilder().build());
        GptMoeConfig wider = small.toBuilder().hidden(512).build();
        assertEquals(4 * 512 / 2, wider.expertFfn());
        assertEquals(4 * 512, wider.denseFfn());
        GptMoeConfig top1 = small.toBuilder().topK(1).build();
        assertEquals(4 * 256, top1.expertFfn());
        GptMoeConfig explicit = small.toBuilder().expertFfn(100).build().toBuilder().hidden(512).build();
        assertEquals(100, explicit.expertFfn());
        assertEquals(2048, explicit.denseFfn());
    }

    @Test
    void describeGivesTheShape() {
        String d = GptMoeConfig.preset("small").describe();
        for (String part : List.of("6 blocks", "hidden 256", "8 heads", "vocab 256", "every 2 blocks", "8 experts",
                "top-2", "expert ffn 512", "dropless", "LayerNorm", "tied")) {
            assertTrue(d.contains(part), () -> "'" + part + "' missing in: " + d);
        }
        assertTrue(GptMoeConfig.preset("gpt-moe-l16-h2560").describe().contains("7.26B parameters"));
        String capped = GptMoeConfig.preset("tiny").toBuilder().capacityFactor(1.25).norm(Norm.RMS)
                .tiedEmbeddings(false).build().describe();
        assertTrue(capped.contains("capacity factor 1.25") && capped.contains("RMSNorm") && capped.contains("untied"),
                capped);
        assertFalse(capped.contains("dropless"), capped);
    }
}
