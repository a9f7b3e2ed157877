"""Unit 04 bank: classic mistakes of a first PyTorch training loop, broken code, correct alternatives."""
from course_grading.banks import Variant

_MLP = "HousePricesMLP"
_COUNT = "count_parameters"
_TRAIN = "train_one_epoch"
_EVAL = "evaluate"
_DIGITS = "train_digits_classifier"
_WRONG_OUTPUT = "HousePricesMLP(2, 1) on a batch of 7 houses: wrong values"

VARIANTS = [
    # --- HousePricesMLP -------------------------------------------------------------------------
    Variant("ReLU after the output layer", cell=_MLP,
            replace=(("return self.out(x)", "return torch.relu(self.out(x))"),),
            breaks=("test_HousePricesMLP",), says=_WRONG_OUTPUT),
    Variant("sigmoid on the output", cell=_MLP,
            replace=(("return self.out(x)", "return torch.sigmoid(self.out(x))"),),
            breaks=("test_HousePricesMLP",), says="no ReLU or sigmoid on the output"),
    Variant("sigmoids instead of ReLUs", cell=_MLP,
            replace=(("x = torch.relu(self.fc1(x))", "x = torch.sigmoid(self.fc1(x))"),
                     ("x = torch.relu(self.fc2(x))", "x = torch.sigmoid(self.fc2(x))")),
            breaks=("test_HousePricesMLP",), says="a ReLU after each of the first two"),
    Variant("second ReLU missing", cell=_MLP,
            replace=(("x = torch.relu(self.fc2(x))", "x = self.fc2(x)"),),
            breaks=("test_HousePricesMLP",), says=_WRONG_OUTPUT),
    Variant("no ReLU at all (a linear model)", cell=_MLP,
            replace=(("x = torch.relu(self.fc1(x))", "x = self.fc1(x)"),
                     ("x = torch.relu(self.fc2(x))", "x = self.fc2(x)")),
            breaks=("test_HousePricesMLP",), says="a ReLU after each of the first two"),
    Variant("ReLU applied to the input too", cell=_MLP,
            replace=(("x = torch.relu(self.fc1(x))", "x = torch.relu(self.fc1(torch.relu(x)))"),),
            breaks=("test_HousePricesMLP",), says=_WRONG_OUTPUT),
    Variant("wrong hidden sizes (4, 4)", cell=_MLP,
            replace=(("self.fc2 = nn.Linear(4, 3)", "self.fc2 = nn.Linear(4, 4)"),
                     ("self.out = nn.Linear(3, output_dim)", "self.out = nn.Linear(4, output_dim)")),
            breaks=("test_HousePricesMLP",), says="nn.Linear layers"),
    Variant("hard-coded output size 1", cell=_MLP,
            replace=(("self.out = nn.Linear(3, output_dim)", "self.out = nn.Linear(3, 1)"),),
            breaks=("test_HousePricesMLP",), says="HousePricesMLP(5, 3)"),
    Variant("output squeezed to shape (N,)", cell=_MLP,
            replace=(("return self.out(x)", "return self.out(x).squeeze(-1)"),),
            breaks=("test_HousePricesMLP",), says="expected (5, 1)"),
    Variant("forgot super().__init__()", cell=_MLP,
            replace=(("        super().__init__()\n", ""),),
            breaks=("test_HousePricesMLP",), says="AttributeError"),

    # --- count_parameters -----------------------------------------------------------------------
    Variant("counts frozen parameters too", cell=_COUNT,
            replace=(("if p.requires_grad)", ")"),),
            breaks=("test_count_parameters",), says="frozen"),
    Variant("counts weights only, not biases", cell=_COUNT,
            replace=(("for p in model.parameters() if p.requires_grad)",
                      "for name, p in model.named_parameters() if p.requires_grad and 'bias' not in name)"),),
            breaks=("test_count_parameters",), says="5 biases"),
    Variant("counts parameter tensors instead of numbers", cell=_COUNT,
            replace=(("sum(p.numel() for p", "sum(1 for p"),),
            breaks=("test_count_parameters",), says="count_parameters(nn.Linear(3, 5))"),
    Variant("returns a tensor", cell=_COUNT,
            replace=(("return sum(p.numel() for p in model.parameters() if p.requires_grad)",
                      "return torch.tensor(sum(p.numel() for p in model.parameters() if p.requires_grad))"),),
            breaks=("test_count_parameters",), says="expected an int"),
    Variant("exception: numel of the generator", cell=_COUNT,
            replace=(("return sum(p.numel() for p in model.parameters() if p.requires_grad)",
                      "return model.parameters().numel()"),),
            breaks=("test_count_parameters",), says="AttributeError"),
    Variant("infinite loop", cell=_COUNT,
            replace=(("return sum(",
                      "total = 0\n    while total >= 0:\n        total += 1\n    return sum("),),
            breaks=("test_count_parameters",), says="did not finish"),

    # --- train_one_epoch --------------------------------------------------------------------------
    Variant("no zero_grad: gradients accumulate", cell=_TRAIN,
            replace=(("        optimizer.zero_grad()\n", ""),),
            breaks=("test_train_one_epoch",), says="zero_grad"),
    Variant("zero_grad after backward", cell=_TRAIN,
            replace=(("        optimizer.zero_grad()\n", ""),
                     ("        loss.backward()\n",
                      "        loss.backward()\n        optimizer.zero_grad()\n")),
            breaks=("test_train_one_epoch",), says="did not change the parameters"),
    Variant("no optimizer.step()", cell=_TRAIN,
            replace=(("        optimizer.step()\n", ""),),
            breaks=("test_train_one_epoch",), says="optimizer.step()"),
    Variant("returns the last batch loss", cell=_TRAIN,
            replace=(("return total / batches", "return loss.item()"),),
            breaks=("test_train_one_epoch",), says="last batch"),
    Variant("returns the summed loss", cell=_TRAIN,
            replace=(("return total / batches", "return total"),),
            breaks=("test_train_one_epoch",), says="sum of the batch losses"),
    Variant("mean weighted by batch size", cell=_TRAIN,
            replace=(("total += loss.item()\n        batches += 1", "total += loss.item() * len(inputs)\n"
                      "        batches += len(inputs)"),),
            breaks=("test_train_one_epoch",), says="weighted by batch size"),
    Variant("returns a tensor that keeps the graph", cell=_TRAIN,
            replace=(("total += loss.item()", "total = total + loss"),),
            breaks=("test_train_one_epoch",), says="tensor"),
    Variant("forgets model.train()", cell=_TRAIN,
            replace=(("    model.train()\n", ""),),
            breaks=("test_train_one_epoch",), says="forward passes in eval mode: call model.train()"),
    Variant("trains in eval mode", cell=_TRAIN,
            replace=(("    model.train()\n", "    model.eval()\n"),),
            breaks=("test_train_one_epoch",), says="forward passes in eval mode: call model.train()"),
    Variant("batches not moved to device", cell=_TRAIN,
            replace=(("        inputs, targets = inputs.to(device), targets.to(device)\n", ""),),
            breaks=("test_train_one_epoch",), says=".to(device)"),
    Variant("targets not moved to device", cell=_TRAIN,
            replace=(("inputs, targets = inputs.to(device), targets.to(device)",
                      "inputs = inputs.to(device)"),),
            breaks=("test_train_one_epoch",), says="targets"),
    Variant("forward pass under no_grad", cell=_TRAIN,
            replace=(("        loss = criterion(model(inputs), targets)\n",
                      "        with torch.no_grad():\n            outputs = model(inputs)\n"
                      "        loss = criterion(outputs.requires_grad_(), targets)\n"),),
            breaks=("test_train_one_epoch",), says="did not change the parameters"),

    # --- evaluate -------------------------------------------------------------------------------
    Variant("evaluate without model.eval()", cell=_EVAL,
            replace=(("    model.eval()\n", ""),),
            breaks=("test_evaluate",), says="eval"),
    Variant("evaluate without torch.no_grad()", cell=_EVAL,
            replace=(("    with torch.no_grad():\n        for", "    if True:\n        for"),),
            breaks=("test_evaluate",), says="forward passes with gradient tracking on"),
    Variant("evaluate switches gradients off for good", cell=_EVAL,
            replace=(("    with torch.no_grad():\n        for",
                      "    torch.set_grad_enabled(False)\n    if True:\n        for"),),
            breaks=("test_evaluate",), says="was still switched off, so later training"),
    Variant("evaluate calls zero_grad", cell=_EVAL,
            replace=(("    model.eval()\n", "    model.eval()\n    model.zero_grad()\n"),),
            breaks=("test_evaluate",), says=".grad"),
    Variant("evaluate does not move batches to device", cell=_EVAL,
            replace=(("            inputs, targets = inputs.to(device), targets.to(device)\n", ""),),
            breaks=("test_evaluate",), says=".to(device)"),
    Variant("evaluate returns the last batch loss", cell=_EVAL,
            replace=(("            total += criterion(model(inputs), targets).item()\n",
                      "            last = criterion(model(inputs), targets).item()\n"
                      "            total += last\n"),
                     ("return total / batches", "return last")),
            breaks=("test_evaluate",), says="not the last batch"),
    Variant("evaluate returns NaN (mean of an empty list)", cell=_EVAL,
            source='''def evaluate(model, loader, criterion, device):
    model.eval()
    losses = []
    with torch.no_grad():
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            loss = criterion(model(inputs), targets).item()
    return float(np.mean(losses))
''', breaks=("test_evaluate",), says="nan"),

    # --- train_digits_classifier ------------------------------------------------------------------
    Variant("digits model returned untrained", cell=_DIGITS,
            replace=(("    for epoch in range(10):", "    for epoch in range(0):"),),
            breaks=("test_train_digits_classifier",), says="accuracy"),
    Variant("digits learning rate far too small", cell=_DIGITS,
            replace=(("lr=3e-3", "lr=1e-6"),),
            breaks=("test_train_digits_classifier",), says="accuracy"),
    Variant("digits returns predictions instead of the model", cell=_DIGITS,
            replace=(("    return model\n", "    return model(inputs.to(device)).argmax(dim=1)\n"),),
            breaks=("test_train_digits_classifier",), says="nn.Module"),
    Variant("digits network ending with a Softmax, trained with CrossEntropyLoss", cell=_DIGITS,
            replace=(("nn.Linear(64, 10)).to(device)", "nn.Linear(64, 10), nn.Softmax(dim=1)).to(device)"),),
            breaks=("test_train_digits_classifier",), says="'A classifier for handwritten digits'"),

    # --- correct alternatives ------------------------------------------------------------------
    Variant("nn.Sequential network", cell=_MLP, source='''class HousePricesMLP(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(),
                                 nn.Linear(3, output_dim))

    def forward(self, x):
        return self.net(x)
'''),
    Variant("output layer registered first, hidden layers in a ModuleList", cell=_MLP,
            source='''import torch.nn.functional as F


class HousePricesMLP(nn.Module):
    def __init__(self, input_dim, output_dim):
        super(HousePricesMLP, self).__init__()
        self.output_layer = nn.Linear(3, output_dim)
        self.hidden = nn.ModuleList([nn.Linear(input_dim, 4), nn.Linear(4, 3)])

    def forward(self, x):
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.output_layer(x)
'''),
    Variant("count with an explicit loop", cell=_COUNT, source='''def count_parameters(model):
    total = 0
    for parameter in model.parameters():
        if parameter.requires_grad:
            total += int(np.prod(parameter.shape))
    return total
'''),
    Variant("train: list of detached losses, model.zero_grad(), batch as a list", cell=_TRAIN,
            source='''def train_one_epoch(model, loader, criterion, optimizer, device):
    model.train()
    losses = []
    for batch in loader:
        x, y = [t.to(device=device) for t in batch]
        model.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses).mean().item()
'''),
    Variant("train: numpy mean of loss.item() values", cell=_TRAIN,
            source='''def train_one_epoch(model, loader, criterion, optimizer, device):
    model.train()
    batch_losses = []
    for i, (features, labels) in enumerate(loader):
        features = features.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=False)
        output = model(features)
        loss = criterion(output, labels)
        loss.backward()
        optimizer.step()
        batch_losses.append(loss.item())
    return float(np.mean(batch_losses))
'''),
    Variant("evaluate with inference_mode, restoring the previous mode", cell=_EVAL,
            source='''def evaluate(model, loader, criterion, device):
    was_training = model.training
    model.eval()
    losses = []
    with torch.inference_mode():
        for x, y in loader:
            losses.append(criterion(model(x.to(device)), y.to(device)).item())
    model.train(was_training)
    return sum(losses) / len(losses)
'''),
    Variant("digits network ending with LogSoftmax, trained with nll_loss", cell=_DIGITS,
            replace=(("nn.Linear(64, 10)).to(device)", "nn.Linear(64, 10), nn.LogSoftmax(dim=1)).to(device)"),
                     ("criterion = nn.CrossEntropyLoss()", "criterion = nn.functional.nll_loss"))),
    Variant("digits with SGD momentum, reusing train_one_epoch", cell=_DIGITS,
            source='''def train_digits_classifier(X_train, y_train, device, seed=0):
    torch.manual_seed(seed)
    data = TensorDataset(torch.tensor(X_train), torch.tensor(y_train).long())
    loader = DataLoader(data, batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(6):
        train_one_epoch(model, loader, nn.CrossEntropyLoss(), optimizer, device)
    return model
'''),
]
