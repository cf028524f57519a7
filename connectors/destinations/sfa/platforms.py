"""The push protocol of a configured SFA destination."""

from __future__ import annotations

from connectors.destinations.sfa.base import SfaPlatform
from connectors.destinations.sfa.config import AnySfa, HubSpot, Salesforce
from connectors.destinations.sfa.hubspot import HubSpotPlatform
from connectors.destinations.sfa.kintone import KintonePlatform
from connectors.destinations.sfa.salesforce import SalesforcePlatform


def sfa_platform(destination: AnySfa) -> SfaPlatform:
    """Salesforce, HubSpot or kintone, by the destination's type."""
    if isinstance(destination, Salesforce):
        return SalesforcePlatform(destination)
    if isinstance(destination, HubSpot):
        return HubSpotPlatform(destination)
    return KintonePlatform(destination)
