"""Hypothesis profiles. `mutants` (scripts/mutants): no shrinking. A mutant only has to make a test fail, and
shrinking the failing example of a property took most of a mutant's run (up to a minute an arbiter row)."""

from hypothesis import Phase, settings

settings.register_profile("mutants", phases=(Phase.explicit, Phase.reuse, Phase.generate))
