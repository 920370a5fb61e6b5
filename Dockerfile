FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir 'setuptools<81' && pip install --no-cache-dir -e .
EXPOSE 8765
CMD ["csss-server", "--host", "0.0.0.0", "--port", "8765"]
