"""The math of docs/MATH.md §2-5: the localization channel, SNR schedules and losses."""

from dslm.diffusion.channel import (SNR_MAX, clean_point, evidence, localize, posterior,
                                    revealed_mask, unit_sphere_embeddings)
from dslm.diffusion.schedules import (LogLinearSchedule, ScheduleConfig, lognormal, mixed, roar,
                                      sample_snr)

__all__ = ["SNR_MAX", "LogLinearSchedule", "ScheduleConfig", "clean_point", "evidence",
           "localize", "lognormal", "mixed", "posterior", "revealed_mask", "roar", "sample_snr",
           "unit_sphere_embeddings"]
