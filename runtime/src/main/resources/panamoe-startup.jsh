// PanaMoE's public API, imported by `./panamoe shell` (after JShell's default imports).
import dev.panamoe.ops.*;
import dev.panamoe.runtime.data.*;
import dev.panamoe.runtime.model.*;
import dev.panamoe.runtime.report.*;
import dev.panamoe.runtime.train.*;
