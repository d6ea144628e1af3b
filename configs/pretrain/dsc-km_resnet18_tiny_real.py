# dsc-km tiny on the real mini images (see real_folders in _base_/tiny_cpu.py).
_base_ = './dsc-km_resnet18_tiny_scenes.py'

train_dataloader = dict(
    dataset=dict(data_root={{_base_.real_data_root}}, folders={{_base_.real_folders}}))
