package dev.panamoe.runtime.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamoe.ops.Activation;
import dev.panamoe.ops.DropPolicy;
import dev.panamoe.ops.ScoreFunction;
import dev.panamoe.runtime.model.GptMoeConfig;
import dev.panamoe.runtime.model.Norm;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class RecordFieldsTest {

    @Test
    void configurationsReadBackFromTheirFields() {
        GptMoeConfig model = GptMoeConfig.preset("small").toBuilder().norm(Norm.RMS).tiedEmbeddings(false)
                .expertActivation(Activation.SWIGLU).scoreFunction(ScoreFunction.SIGMOID).capacityFactor(1.25)
                .dropPolicy(DropPolicy.BY_POSITION).auxLossCoeff(0.02f).build();
        assertEquals(model, RecordFields.parse(GptMoeConfig.class, RecordFields.of(model)));
        GptMoeConfig dropless = GptMoeConfig.preset("tiny");
        assertEquals(dropless, RecordFields.parse(GptMoeConfig.class, RecordFields.of(dropless)));
        TrainingConfig training = TrainingConfig.builder().steps(30).lr(1e-3f).seed(-5).checkpointDir(Path.of("ck"))
                .tokenizer("gpt2").precision(Precision.AUTO).build();
        assertEquals(training, RecordFields.parse(TrainingConfig.class, training.toMap()));
    }

    @Test
    void aFieldMissingFromOlderTextIsNullAndBadTextNamesTheField() {
        Map<String, String> fields = new LinkedHashMap<>(TrainingConfig.builder().build().toMap());
        fields.remove("tokenizer");
        fields.remove("precision");
        assertNull(RecordFields.parse(TrainingConfig.class, fields).tokenizer());
        assertEquals(Precision.FP32, RecordFields.parse(TrainingConfig.class, fields).precision());
        fields.put("steps", "many");
        var e = assertThrows(IllegalArgumentException.class, () -> RecordFields.parse(TrainingConfig.class, fields));
        assertEquals("steps: cannot read 'many' as int", e.getMessage());
        fields.put("steps", "0");
        e = assertThrows(IllegalArgumentException.class, () -> RecordFields.parse(TrainingConfig.class, fields));
        assertTrue(e.getMessage().startsWith("steps: must be >= 1"), e.getMessage());
    }
}
