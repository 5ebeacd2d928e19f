"""Weights on the Hugging Face Hub: ``hf://OWNER/REPO[@REVISION]/PATH`` addresses (the form
``huggingface_hub``'s own file system uses), fetched into the Hub's cache, and a published folder
uploaded to a Hub repository.

Downloads go through ``huggingface_hub`` (the optional extra ``imgzoo[hub]``) into its cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``), where ``HF_HUB_OFFLINE=1`` (or imgzoo's own
``IMGZOO_OFFLINE=1``) reads them without the network. What a file holds is verified by
:func:`imgzoo.weights.load_weights`, as for any other source. Reading an address and linking to its
repository need no extra: ``imgzoo info`` shows Hub weights without it.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from imgzoo.errors import ArgumentError, MissingExtraError, OutputError, WeightsError

__all__ = [
    "HUB_SCHEME",
    "HubAddress",
    "cached_hub_file",
    "check_repo_id",
    "download",
    "is_hub_address",
    "push_folder",
]

HUB_SCHEME = "hf://"
HUB_SITE = "https://huggingface.co"
# A repository id as the Hub allows it; a revision with a "/" (refs/pr/1) is written
# percent-encoded (refs%2Fpr%2F1), as huggingface_hub's file system writes it.
_REPO_ID = r"[\w][\w.-]*/[\w][\w.-]*"
_ADDRESS = re.compile(rf"hf://(?P<repo>{_REPO_ID})(?:@(?P<revision>[^/]+))?/(?P<path>[^/].*)")
_FORM = "hf://OWNER/REPO[@REVISION]/PATH.safetensors"


@dataclass(frozen=True)
class HubAddress:
    """A file in a Hub model repository, at a revision (a branch, tag or commit; None: main)."""

    repo_id: str
    path: str
    revision: str | None = None

    @classmethod
    def parse(cls, source: str) -> HubAddress:
        """The address ``source`` spells; a WeightsError showing the form otherwise."""
        match = _ADDRESS.fullmatch(source)
        if match is None:
            raise WeightsError(f"{source!r} is not a Hub weights address: write {_FORM}", path=source)
        revision = urllib.parse.unquote(match["revision"]) if match["revision"] else None
        return cls(match["repo"], match["path"], revision)

    def __str__(self) -> str:
        revision = f"@{urllib.parse.quote(self.revision, safe='')}" if self.revision else ""
        return f"{HUB_SCHEME}{self.repo_id}{revision}/{self.path}"

    @property
    def page(self) -> str:
        """The repository's page on the Hub, which shows its model card."""
        return f"{HUB_SITE}/{self.repo_id}"


def is_hub_address(source: str) -> bool:
    """Whether a weights source names a file on the Hub (well formed or not)."""
    return source.startswith(HUB_SCHEME)


def check_repo_id(repo_id: str, *, flag: str) -> str:
    """``repo_id`` if it is an OWNER/REPO the Hub allows; an ArgumentError naming ``flag`` otherwise."""
    if not re.fullmatch(_REPO_ID, repo_id) or "--" in repo_id or ".." in repo_id:
        raise ArgumentError(
            f"{flag} {repo_id!r}: write the Hub repository as OWNER/REPO (letters, digits, '-', '_', '.')",
            argument=flag,
        )
    return repo_id


def download(source: str, *, offline: str | None) -> Path:
    """The local file of the Hub address ``source``: from the Hub's cache, downloaded into it first
    when it is not there and the network may be used (``offline``: imgzoo's own setting that
    forbids it, as ``HF_HUB_OFFLINE=1`` does). One line naming the address, and whether the lookup
    was offline, when it cannot be had."""
    address = HubAddress.parse(source)
    hub = _import_hub(f"to fetch {source}")
    from huggingface_hub import errors

    offline = _offline_reason(hub, offline)
    at = f"at revision {address.revision or 'main'}"
    try:
        return Path(
            hub.hf_hub_download(
                address.repo_id,
                address.path,
                revision=address.revision,
                local_files_only=offline is not None,
                library_name="imgzoo",
            )
        )
    except errors.LocalEntryNotFoundError:
        cache = hub.constants.HF_HUB_CACHE
        if offline is not None:
            how = f"the lookup was offline ({offline}): unset it to download the file"
        else:
            how = "the lookup was offline, as the Hub could not be reached: connect to the network and retry"
        message = f"{source} is not in the Hugging Face cache ({cache}) {at}, and {how}"
    except errors.RevisionNotFoundError:
        message = (
            f"{source}: repository {address.repo_id} has no revision {address.revision!r} (looked up online)"
        )
    except errors.RepositoryNotFoundError:
        message = (
            f"{source}: no repository {address.repo_id} on the Hub that this machine may read (looked up "
            "online): check the name, or log in with `hf auth login` (or set HF_TOKEN) for a private one"
        )
    except errors.EntryNotFoundError:
        message = f"{source}: repository {address.repo_id} has no file {address.path} {at} (looked up online)"
    except Exception as error:  # the network's, whose types depend on the HTTP client (see push_folder)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        message = f"could not download {source} ({reason}): retry, or set HF_HUB_OFFLINE=1 to use the cache"
    raise WeightsError(message, path=source)


def cached_hub_file(source: str) -> Path | None:
    """The file of the Hub address ``source`` if the Hub's cache holds it, else None (as when
    ``huggingface_hub`` is not installed, or the address is malformed); never downloads."""
    try:
        address = HubAddress.parse(source)
        hub = _import_hub("")
    except (WeightsError, MissingExtraError):
        return None
    found = hub.try_to_load_from_cache(address.repo_id, address.path, revision=address.revision)
    return Path(found) if isinstance(found, str) else None


def push_folder(folder: Path, repo_id: str, *, message: str, offline: str | None) -> str:
    """Upload ``folder``'s files to the Hub model repository ``repo_id`` (created if missing) as
    one commit; the commit's URL. Needs a token (``hf auth login`` or ``HF_TOKEN``) and the network
    (``offline`` as for `download`)."""
    hub = _import_hub(f"to push to {repo_id}")
    offline = _offline_reason(hub, offline)
    if offline is not None:
        raise OutputError(f"cannot push to {repo_id} while offline ({offline}): unset it first", path=repo_id)
    api = hub.HfApi(library_name="imgzoo")
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=message
        )
    # Besides the Hub's answers, whatever the network raises: its exceptions are those of the HTTP
    # client that huggingface_hub uses (requests, httpx...), which changes between versions.
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OutputError(
            f"could not push {folder} to {repo_id} ({reason}): check the network, and log in with "
            "`hf auth login` (or set HF_TOKEN) with a token that may write to it",
            path=repo_id,
        ) from error
    return str(commit.commit_url)


def _offline_reason(hub: ModuleType, own: str | None) -> str | None:
    """The setting that forbids the network ("HF_HUB_OFFLINE=1", or imgzoo's ``own``), or None."""
    return "HF_HUB_OFFLINE=1" if hub.constants.HF_HUB_OFFLINE else own


def _import_hub(purpose: str) -> ModuleType:
    try:
        import huggingface_hub
        import huggingface_hub.constants  # a submodule that the package does not import itself
    except ImportError:
        raise MissingExtraError("huggingface_hub", extra="hub", purpose=purpose) from None
    return huggingface_hub
