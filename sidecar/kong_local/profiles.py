"""Behaviour profiles: which Kong (version, database, role) the local server pretends to be.

Every switch here is a difference between real Kong versions, named after what it changes,
so handlers ask ``profile.post_existing_updates`` instead of comparing version strings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    key: str
    version: str  # e.g. "3.9.3"
    database: str  # "postgres" | "off"
    role: str  # "traditional" | "data_plane" | "control_plane"
    konnect: bool = False

    @property
    def major_minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    @property
    def is_3x(self) -> bool:
        return self.major_minor >= (3, 0)

    @property
    def writable(self) -> bool:
        """DB-less nodes and data planes answer every write with 405 (strategies/off)."""
        return self.database != "off"

    @property
    def has_updated_at(self) -> bool:
        """``updated_at`` on targets and upstreams arrived in 3.3 (#10400)."""
        return self.major_minor >= (3, 3)

    @property
    def post_existing_updates(self) -> bool:
        """2.2-2.8: POST of an existing target string updates it (200 + Deprecation: true)."""
        return not self.is_3x and not self.konnect

    @property
    def eager_balancer(self) -> bool:
        """2.8 builds balancers at startup/on events; 3.x lazily on the first proxied request."""
        return not self.is_3x

    @property
    def health_override_method(self) -> str:
        """Manual ``…/healthy|unhealthy`` routes: POST in 2.x, PUT from 3.0."""
        return "PUT" if self.is_3x else "POST"

    @property
    def has_edition(self) -> bool:
        """``GET /`` carries ``edition`` from 3.6."""
        return self.major_minor >= (3, 6)

    @property
    def has_balancer_health_field(self) -> bool:
        """``?balancer_health=1`` reports ``balancer_health`` from 3.3 (#10021)."""
        return self.major_minor >= (3, 3)

    @property
    def tag_allows_space(self) -> bool:
        """Tags may contain a space since 3.0."""
        return self.is_3x

    @property
    def algorithms(self) -> tuple[str, ...]:
        base = ("consistent-hashing", "least-connections", "round-robin")
        return (*base, "latency") if self.major_minor >= (3, 2) else base

    @property
    def hash_on_values(self) -> tuple[str, ...]:
        base = ("none", "consumer", "ip", "header", "cookie")
        return (*base, "path", "query_arg", "uri_capture") if self.is_3x else base


PROFILE_TABLE: dict[str, Profile] = {
    "2.8": Profile("2.8", "2.8.5", "postgres", "traditional"),
    "3.4": Profile("3.4", "3.4.2", "postgres", "traditional"),
    "3.9": Profile("3.9", "3.9.3", "postgres", "traditional"),
    "konnect": Profile("konnect", "3.9.3", "postgres", "control_plane", konnect=True),
    # An OSS hybrid control plane: writable, no balancer, lists its DPs' config hashes.
    "hybrid": Profile("hybrid", "3.9.3", "postgres", "control_plane"),
    "dbless": Profile("dbless", "3.9.3", "off", "traditional"),
    "data-plane": Profile("data-plane", "3.9.3", "off", "data_plane"),
}

PROFILES: tuple[str, ...] = tuple(PROFILE_TABLE)


def get_profile(key: str) -> Profile:
    try:
        return PROFILE_TABLE[key]
    except KeyError:
        raise ValueError(
            f"unknown profile {key!r}; expected one of {', '.join(PROFILES)}"
        ) from None
