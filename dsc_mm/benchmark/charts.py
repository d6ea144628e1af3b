"""The transfer chart: one panel per table column, one bar per pretraining method."""
from typing import Dict


def transfer_chart(table: Dict[str, Dict[str, dict]], methods, protocols, path: str,
                   title: str) -> str:
    """Draw grouped bars (mean, with std as error bars) into ``path`` (PNG); missing cells are
    left empty and labelled, never drawn as zero."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    columns = [(p, col) for p in protocols for col in p.metrics]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns) + 1, 3.6),
                             squeeze=False)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, (p, col) in zip(axes[0], columns):
        for i, m in enumerate(methods):
            summary = table[m.key][p.key][col]
            if summary['n'] == 0:
                ax.text(i, 0, 'n/a', ha='center', va='bottom', fontsize=7, rotation=90)
                continue
            ax.bar(i, summary['mean'], yerr=summary['std'] if summary['n'] > 1 else None,
                   color=colors[i % len(colors)], capsize=3)
        ax.set_xticks(range(len(methods)), [m.title for m in methods], rotation=45,
                      ha='right', fontsize=7)
        ax.set_title(f'{p.key} {col}', fontsize=8)
        ax.tick_params(axis='y', labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
