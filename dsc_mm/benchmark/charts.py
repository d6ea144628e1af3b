"""The transfer chart: one panel per table column, one bar per pretraining method."""
from typing import Dict


def transfer_figure(table: Dict[str, Dict[str, dict]], methods, protocols, title: str):
    """Grouped bars: the mean over a cell's seeds, its sample std as an error bar where n > 1,
    and ``n=`` at the foot of each bar; missing cells are left empty and labelled, never drawn
    as zero.

    Returns:
        matplotlib.figure.Figure: One axis per (protocol, column), in table order.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    columns = [(p, col) for p in protocols for col in p.metrics]
    width = max(2.6 * len(columns) + 1, 4.5)  # one panel still fits the two title lines
    fig, axes = plt.subplots(1, len(columns), figsize=(width, 3.8), squeeze=False)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, (p, col) in zip(axes[0], columns):
        for i, m in enumerate(methods):
            summary = table[m.key][p.key][col]
            if summary['n'] == 0:
                ax.text(i, 0, 'n/a', ha='center', va='bottom', fontsize=7, rotation=90)
                continue
            ax.bar(i, summary['mean'], yerr=summary['std'] if summary['n'] > 1 else None,
                   color=colors[i % len(colors)], capsize=3)
            ax.annotate(f"n={summary['n']}", (i, 0), xytext=(0, 2), textcoords='offset points',
                        ha='center', va='bottom', fontsize=6)
        ax.set_xticks(range(len(methods)), [m.title for m in methods], rotation=45,
                      ha='right', fontsize=7)
        ax.set_title(f'{p.key} {col}', fontsize=8)
        ax.tick_params(axis='y', labelsize=7)
    fig.suptitle(f'{title}\nerror bars: sample std over n seeds', fontsize=9)
    fig.tight_layout()
    return fig


def transfer_chart(table: Dict[str, Dict[str, dict]], methods, protocols, path: str,
                   title: str) -> str:
    """Draw :func:`transfer_figure` into ``path`` (PNG); returns ``path``."""
    import matplotlib.pyplot as plt
    fig = transfer_figure(table, methods, protocols, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
