"""The memory bank of negatives shared by DSC's instance and pixel terms."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather


class FeatureQueue(nn.Module):
    """A FIFO queue of L2-normalised key embeddings (MoCo's memory bank).

    Stored as ``(feat_dim, queue_len)`` like mmpretrain's ``MoCo.queue`` so that
    ``q @ queue`` gives the negative logits directly and checkpoints are easy to compare.
    Both buffers (``queue``, ``ptr``) live in the state dict, so a resumed run continues
    with the same negatives.

    Unlike mmpretrain's ``_dequeue_and_enqueue`` the pointer arithmetic stays on the device
    (no ``int(ptr)``, which is a host sync on an accelerator) and the global batch does not
    have to divide ``queue_len``: writes wrap around the end of the queue.

    Args:
        feat_dim (int): Dimension of the embeddings C.
        queue_len (int): Number of stored keys L.
    """

    def __init__(self, feat_dim: int, queue_len: int) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.queue_len = queue_len
        self.register_buffer('queue', F.normalize(torch.randn(feat_dim, queue_len), dim=0))
        self.register_buffer('ptr', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Gather the keys of every process and write them at the pointer.

        The keys are all-gathered through ``mmengine.dist`` (a no-op with one process), so every
        process stores the same global batch and the pointer advances by the GLOBAL batch size.

        Args:
            keys (torch.Tensor): This process's keys, L2-normalised. # (B, C)
        """
        keys = torch.cat(all_gather(keys), dim=0)  # (W*B, C)
        num_keys = keys.shape[0]
        if num_keys > self.queue_len:
            raise ValueError(f'The global batch of {num_keys} keys does not fit in a queue of '
                             f'queue_len={self.queue_len}; set queue_len to at least the global '
                             f'batch size in the model config.')
        slots = (self.ptr + torch.arange(num_keys, device=keys.device)) % self.queue_len
        self.queue[:, slots] = keys.t().to(self.queue.dtype)
        self.ptr.copy_((self.ptr + num_keys) % self.queue_len)

    def extra_repr(self) -> str:
        return f'feat_dim={self.feat_dim}, queue_len={self.queue_len}'
